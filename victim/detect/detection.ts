import type { Request } from 'express';
import { TransferlabError } from '../../shared/errors.js';
import type { AuditEvent, AuditSink } from '../store/audit.js';
import { ANONYMOUS, type Principal } from '../store/keys.js';
import type { QueryDetector } from './detectors.js';
import type { ClientSummary, Detection } from './prada.js';
import type { SharedDetectorState } from './shared-state.js';

/**
 * The victim's side of extraction detection (AML.M0015): feeds every answered image to the PRADA
 * detector under its client, writes a detection to the audit log, and — with action `block` — refuses
 * the flagged client's later queries (403 extraction_suspected, nothing charged). With `log` the
 * watched client's answers are unchanged: a detection is visible only in the audit log and on the
 * admin endpoint. With `reject` (as Blacklight's paper answers an attack query) each request is
 * judged before it is charged: a batch holding a query the detectors flag (Blacklight: it matched an
 * earlier one; PRADA: the client's W stood below δ after it) is refused with 403 query_rejected,
 * nothing charged, and the client goes on being served; its images still join the detectors' state
 * (they are evidence, as in the paper). Detections are replayed from the audit log at start-up, so
 * blocks survive restarts; an operator lifts one with DELETE /v1/admin/detections/{client} (audited as
 * `block_lifted`).
 */
export const DETECTOR_ACTIONS = ['log', 'block', 'reject'] as const;
export type DetectorAction = (typeof DETECTOR_ACTIONS)[number];

export interface DetectionRecord {
  time: string;
  keyId: string;
  client: string;
  requestId: string;
  w: number;
  queries: number;
  distances: number;
  action: DetectorAction;
  /** Which detector flagged the client, and (Blacklight) its matched queries. */
  by?: 'prada' | 'blacklight';
  matches?: number;
}

export interface DetectorView {
  detector:
    | (Partial<QueryDetector['settings']['prada']> & {
        kind: string;
        kinds: QueryDetector['kinds'];
        settings: QueryDetector['settings'];
        action: DetectorAction;
        trackedClients: number;
        memoryBytes: number;
      })
    | null;
  detections: DetectionRecord[];
  clients: ClientSummary[];
}

/** Detections shared by victim replicas (the Redis store): a block set by one is enforced by all. */
export interface SharedDetections {
  detection(client: string): Promise<DetectionRecord | undefined>;
  putDetection(record: DetectionRecord): Promise<void>;
  deleteDetection(client: string): Promise<boolean>;
  detections(): Promise<DetectionRecord[]>;
}

export class ExtractionWatch {
  private readonly records = new Map<string, DetectionRecord>();

  constructor(
    readonly detector: QueryDetector,
    readonly action: DetectorAction,
    private readonly audit: AuditSink,
    private readonly clock: () => Date = () => new Date(),
    private readonly shared?: SharedDetections,
    /** Replicas on a shared store: the detectors' per-client state in Redis, so each sees every query. */
    private readonly sharedState?: SharedDetectorState,
  ) {}

  /** Whom the detector watches: the API key, or each client address on an open service. */
  static clientOf(principal: Principal, ip: string): string {
    return principal.id === ANONYMOUS ? `${ANONYMOUS}@${ip}` : principal.id;
  }

  /** Refuse a blocked client before anything is read or charged (asking the shared store when there is one). */
  async check(client: string): Promise<void> {
    if (this.action !== 'block') return;
    if (this.shared ? await this.shared.detection(client) : this.records.has(client)) {
      throw new TransferlabError(
        'extraction_suspected',
        'the queries sent with this API key were flagged as a model-extraction attack, so it may not query this service any more; ' +
          'nothing was charged — contact the service operator',
        403,
      );
    }
  }

  /**
   * Feed a request's answered images. When this request makes the client cross the threshold, the
   * detection is recorded and written to the audit log (before the answer leaves, like every line).
   * With replicas, the shared state records it in the same Redis script that appends the request's
   * journal, so a replica dying after that leaves the client blocked on every other replica.
   */
  async observe(keyId: string, client: string, requestId: string, images: Float32Array, labels: Int32Array, flagged?: number[]): Promise<DetectionRecord | null> {
    let stored: DetectionRecord | undefined;
    const recordOf = (d: Detection) => JSON.stringify((stored = this.recordOf(d, keyId, client, requestId)));
    const d = this.sharedState
      ? await this.sharedState.observe(this.detector, client, images, labels, recordOf, flagged)
      : this.detector.observe(client, images, labels, undefined, flagged);
    if (!d) return null;
    const record = stored ?? this.recordOf(d, keyId, client, requestId);
    this.records.set(client, record);
    if (!this.sharedState) await this.shared?.putDetection(record);
    const event: AuditEvent = { event: 'extraction_suspected', ...record };
    await this.audit.record(event);
    return record;
  }

  private recordOf(d: Detection, keyId: string, client: string, requestId: string): DetectionRecord {
    return {
      time: this.clock().toISOString(),
      keyId,
      client,
      requestId,
      w: Math.round(d.w * 1e6) / 1e6,
      queries: d.queries,
      distances: d.distances,
      action: this.action,
      ...(d.by ? { by: d.by } : {}),
      ...(d.matches !== undefined ? { matches: d.matches } : {}),
    };
  }

  /** Replay earlier detections and lifted blocks from the audit log; returns the clients flagged now. */
  restore(events: readonly AuditEvent[]): number {
    for (const e of events) {
      if (e.event === 'block_lifted') {
        this.records.delete(e.client);
        this.detector.forget(e.client);
        continue;
      }
      const record: DetectionRecord = {
        time: e.time,
        keyId: e.keyId,
        client: e.client,
        requestId: e.requestId ?? '',
        w: e.w ?? Number.NaN,
        queries: e.queries ?? 0,
        distances: e.distances ?? 0,
        action: e.action ?? 'log',
        ...(e.by ? { by: e.by } : {}),
        ...(e.matches !== undefined ? { matches: e.matches } : {}),
      };
      this.records.set(e.client, record);
      this.detector.restoreFlag({ clientId: e.client, w: record.w, queries: record.queries, distances: record.distances, by: record.by, matches: record.matches });
    }
    return this.records.size;
  }

  /** Lift a client's flag (and block): its detector state starts afresh. False when it was not flagged. */
  async lift(client: string): Promise<boolean> {
    const record = this.records.get(client) ?? (await this.shared?.detection(client));
    if (!record) return false;
    await this.shared?.deleteDetection(client);
    await this.sharedState?.reset(client, this.detector);
    await this.audit.record({ time: this.clock().toISOString(), event: 'block_lifted', keyId: record.keyId, client });
    this.records.delete(client);
    this.detector.forget(client);
    return true;
  }

  async view(): Promise<DetectorView> {
    const detections = this.shared ? await this.shared.detections() : [...this.records.values()];
    return {
      detector: {
        // PRADA's settings stay at the top level, where clients of this endpoint already read them.
        ...(this.detector.settings.prada ?? {}),
        kind: this.detector.kinds.join('+'),
        kinds: this.detector.kinds,
        settings: this.detector.settings,
        action: this.action,
        trackedClients: this.detector.summaries().length,
        memoryBytes: this.detector.memoryBytes,
      },
      detections,
      clients: this.detector.summaries(),
    };
  }
}

/**
 * Action `reject`: judge a labelled request before it is charged. Returns the indices of the images
 * the detectors flagged (empty: answer it). A detector fault answers the request (fails open, as
 * `log` and `block` do) and is logged.
 */
export async function judgeRequest(watch: ExtractionWatch, req: Request, keyId: string, client: string, images: Float32Array, labels: Int32Array): Promise<number[]> {
  const flagged: number[] = [];
  try {
    const found = await watch.observe(keyId, client, String(req.id), images, labels, flagged);
    if (found) req.log.warn({ keyId, client, w: found.w, queries: found.queries, action: found.action }, 'extraction suspected');
    return flagged;
  } catch (e) {
    req.log.error({ err: e }, 'extraction detector failed');
    return [];
  }
}

/**
 * Feed an answered request to the detector. A detection is logged for the operator and audited; the
 * client's own answer is never affected, and a detector fault never fails a request.
 */
export async function watchAnswer(watch: ExtractionWatch, req: Request, keyId: string, client: string, images: Float32Array, labels: Int32Array): Promise<void> {
  try {
    const found = await watch.observe(keyId, client, String(req.id), images, labels);
    if (found) req.log.warn({ keyId, client, w: found.w, queries: found.queries, action: found.action }, 'extraction suspected');
  } catch (e) {
    req.log.error({ err: e }, 'extraction detector failed');
  }
}
