import type { BlacklightDetector, BlacklightOptions } from './blacklight.js';
import { JournalWriter, type JournalReader } from './journal.js';
import type { ClientSummary, Detection, PradaDetector, PradaOptions } from './prada.js';

/**
 * One or more extraction / query-attack detectors behind the single interface the service's watch
 * uses: every answered image goes to each; the first to flag a client decides its detection (a
 * client is flagged once, whoever saw it first), and a restored or lifted flag goes to all of them.
 */
/** Bumped whenever a detector's snapshot changes shape. */
const SNAPSHOT_FORMAT = 1;

export const DETECTOR_KINDS = ['prada', 'blacklight'] as const;
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

export interface QueryDetector {
  readonly kinds: DetectorKind[];
  readonly settings: { prada?: PradaOptions; blacklight?: BlacklightOptions };
  /**
   * With a journal, each detector's journal of the request is written to it, one chunk each, in `kinds`
   * order. `flagged` receives the indices of the images any detector judged an attack query (sorted, once each).
   */
  observe(clientId: string, images: Float32Array, labels: ArrayLike<number>, journal?: JournalWriter, flagged?: number[]): Detection | null;
  /** A request another replica observed, from its journal: the same state changes and flags; returns its detection. */
  replay(clientId: string, journal: JournalReader): Detection | null;
  /** The client's whole state and flags (every detector's), for a snapshot of its shared journal. */
  snapshot(clientId: string, w: JournalWriter): void;
  /** Replace the client's state and flags by a snapshot's (written by a set with the same settings). */
  restore(clientId: string, r: JournalReader): void;
  /** Whether every detector holds state for the client (each forgets clients to make room). */
  tracks(clientId: string): boolean;
  restoreFlag(d: Detection): void;
  forget(clientId: string): void;
  readonly memoryBytes: number;
  summaries(): (ClientSummary & { detector: DetectorKind })[];
}

export function detectorSet(parts: { prada?: PradaDetector; blacklight?: BlacklightDetector }): QueryDetector {
  const list: [DetectorKind, PradaDetector | BlacklightDetector][] = [];
  if (parts.prada) list.push(['prada', parts.prada]);
  if (parts.blacklight) list.push(['blacklight', parts.blacklight]);
  const flagged = new Set<string>();
  return {
    kinds: list.map(([k]) => k),
    settings: { prada: parts.prada?.options, blacklight: parts.blacklight?.options },
    observe(clientId, images, labels, journal, flaggedQueries) {
      let first: Detection | null = null;
      const queries: number[] = [];
      for (const [kind, d] of list) {
        const part = journal ? new JournalWriter() : undefined;
        const found = d.observe(clientId, images, labels, part, queries);
        if (journal && part) journal.chunk(part);
        if (found && !first && !flagged.has(clientId)) first = { ...found, by: kind };
      }
      if (first) flagged.add(clientId);
      flaggedQueries?.push(...[...new Set(queries)].sort((a, b) => a - b));
      return first;
    },
    replay(clientId, journal) {
      let first: Detection | null = null;
      for (const [kind, d] of list) {
        const found = d.replay(clientId, journal.chunk());
        if (found && !first && !flagged.has(clientId)) first = { ...found, by: kind };
      }
      if (first) flagged.add(clientId);
      return first;
    },
    snapshot(clientId, w) {
      w.u8(SNAPSHOT_FORMAT);
      w.u8(flagged.has(clientId) ? 1 : 0);
      for (const [, d] of list) {
        const part = new JournalWriter();
        d.snapshot(clientId, part);
        w.chunk(part);
      }
    },
    restore(clientId, r) {
      const format = r.u8();
      if (format !== SNAPSHOT_FORMAT) throw new Error(`detector snapshot of format ${format}, this replica reads ${SNAPSHOT_FORMAT}: replicas must run the same version`);
      flagged.delete(clientId);
      if (r.u8()) flagged.add(clientId);
      for (const [, d] of list) d.restore(clientId, r.chunk());
    },
    tracks(clientId) {
      return list.every(([, d]) => d.tracks(clientId));
    },
    restoreFlag(d) {
      flagged.add(d.clientId);
      for (const [, det] of list) det.restoreFlag(d);
    },
    forget(clientId) {
      flagged.delete(clientId);
      for (const [, det] of list) det.forget(clientId);
    },
    get memoryBytes() {
      return list.reduce((s, [, d]) => s + d.memoryBytes, 0);
    },
    summaries() {
      return list.flatMap(([kind, d]) => d.summaries().map((c) => ({ ...c, detector: kind })));
    },
  };
}
