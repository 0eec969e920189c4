import { JsonlLog } from '../../shared/jsonl-log.js';

/**
 * The audit log: one JSON line per paid request (/v1/label, /v1/predict, the protocol routes), answered or refused, made durable (write +
 * fsync) before the response is sent, so a kill -9 can never lose a request somebody got an answer
 * to. It records who asked, how much and a hash of exactly what was sent — never the key or the
 * payload itself.
 */
/** abandoned: labelled, but the client had hung up, so nothing was charged or sent. */
export type AuditOutcome = 'answered' | 'rejected' | 'failed' | 'replayed' | 'abandoned';

export interface AuditEntry {
  time: string;
  requestId: string;
  /** null when the caller could not be identified (missing or wrong key). */
  keyId: string | null;
  images: number;
  /** sha256 of the raw request body; null when the body was never read (refused before that). */
  payloadSha256: string | null;
  outcome: AuditOutcome;
  status: number;
  /** The error code of a refused request. */
  code?: string;
  /** The paid route other than /v1/label: predict, oip or tfserving (absent: /v1/label). */
  route?: string;
  durationMs: number;
}

/**
 * Not a request but something the victim concluded about a client (victim/detect/detection.ts): the
 * extraction detector flagged it, or an operator lifted its block. Replayed at start-up.
 */
export interface AuditEvent {
  time: string;
  event: 'extraction_suspected' | 'block_lifted';
  keyId: string;
  /** The detector's client: the key id, or anonymous@<ip> on an open service. */
  client: string;
  /** extraction_suspected: the request whose answer crossed the threshold, W, and the counts it was computed on. */
  requestId?: string;
  w?: number;
  queries?: number;
  distances?: number;
  action?: 'log' | 'block' | 'reject';
  /** Which detector flagged the client (absent: PRADA), and Blacklight's matched-query count. */
  by?: 'prada' | 'blacklight';
  matches?: number;
}

/**
 * First line of every start of the service: which model answered the requests that follow, by the
 * sha256 of its weights, so an answer can always be traced to the exact model that gave it.
 */
export interface AuditStart {
  time: string;
  event: 'service_started';
  model: { path: string; format: string; weightsSha256: string; inputShape: number[]; classes: number; dataset: string | null };
  pid: number;
}

export function isAuditEvent(r: unknown): r is AuditEvent {
  const e = r as Partial<AuditEvent> | null;
  return !!e && typeof e === 'object' && (e.event === 'extraction_suspected' || e.event === 'block_lifted') && typeof e.client === 'string';
}

/**
 * Where a crash tore the last line of the log: the fragment (as text, so an operator can read what
 * was being written) replaces the torn line, so every later start reads whole lines. The torn write's
 * fsync never returned, so no answer was sent from it.
 */
export interface AuditTornTail {
  time: string;
  event: 'torn_tail';
  bytes: number;
  fragment: string;
}

export function tornTailRecord(fragment: Buffer, clock: () => Date = () => new Date()): AuditTornTail {
  return { time: clock().toISOString(), event: 'torn_tail', bytes: fragment.length, fragment: fragment.toString('utf8') };
}

/** What the HTTP layer needs; tests can pass an in-memory one. */
export interface AuditSink {
  record(entry: AuditEntry | AuditEvent | AuditStart): Promise<void>;
}

export class FileAuditLog implements AuditSink {
  private constructor(private readonly log: JsonlLog) {}

  /** Open for appending; a torn last line from a crash is replaced by a torn_tail record holding it. */
  static open(path: string, clock?: () => Date): { audit: FileAuditLog; previous: number; events: AuditEvent[]; tornTail?: AuditTornTail } {
    let torn: AuditTornTail | undefined;
    const { log, records } = JsonlLog.open(path, { torn: (fragment) => (torn = tornTailRecord(fragment, clock)) });
    return { audit: new FileAuditLog(log), previous: records.length, events: records.filter(isAuditEvent), tornTail: torn };
  }

  get path(): string {
    return this.log.path;
  }

  record(entry: AuditEntry | AuditEvent | AuditStart): Promise<void> {
    return this.log.append(entry);
  }

  close(): void {
    this.log.close();
  }
}

export class MemoryAuditLog implements AuditSink {
  readonly entries: AuditEntry[] = [];
  readonly events: AuditEvent[] = [];
  readonly starts: AuditStart[] = [];
  async record(entry: AuditEntry | AuditEvent | AuditStart): Promise<void> {
    if ('event' in entry && entry.event === 'service_started') this.starts.push(entry);
    else if ('event' in entry) this.events.push(entry);
    else this.entries.push(entry);
  }
}
