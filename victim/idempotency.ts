import { TransferlabError } from '../shared/errors.js';
import { HEADERS, IDEMPOTENCY_KEY_PATTERN } from '../shared/protocol/index.js';

/**
 * Idempotency-Key support for POST /v1/label. A client that was charged but never got its answer
 * (a timeout, a killed process) sends the same request with the same key again; the victim answers
 * with the labels it already charged for and charges nothing (audit outcome `replayed`).
 *
 * Keys are scoped to the caller (two API keys never share an entry) and must come with the same
 * body: the same key with a different payload is refused (422 idempotency_key_reused), following the
 * IETF httpapi Idempotency-Key draft. A repeat that arrives while the first is still being labelled
 * waits for it instead of paying again. Entries live in memory only, in an LRU bounded by
 * `capacity` (default 10,000 entries; each holds at most maxBatch labels, ≤ 4 KB at maxBatch 1000).
 */
export const IDEMPOTENCY_HEADER = HEADERS.idempotencyKey;
export const IDEMPOTENCY_CAPACITY = 10_000;
const KEY_RULE = IDEMPOTENCY_KEY_PATTERN;

interface Entry {
  payloadSha256: string;
  /** Resolves with the charged labels, or null when the first request failed before a charge. */
  done: Promise<Int32Array | null>;
  settle: (labels: Int32Array | null) => void;
  charged: boolean;
}

export interface IdempotencyTicket {
  readonly id: string;
  readonly entry: Entry;
}

/** The header's value, validated; undefined when absent. */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!KEY_RULE.test(header)) {
    throw new TransferlabError(
      'invalid_idempotency_key',
      `${IDEMPOTENCY_HEADER} must be 1-255 printable ASCII characters without spaces (e.g. the sha256 hex of the body)`,
      400,
    );
  }
  return header;
}

export class IdempotencyCache {
  /** Insertion order = recency: a hit is re-inserted at the end, eviction takes the first. */
  private readonly entries = new Map<string, Entry>();

  constructor(readonly capacity = IDEMPOTENCY_CAPACITY) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Synchronously claim the key for a request about to be charged (`ticket`: call `finish` or
   * `abandon` on it), or get the earlier request's outcome (`prior`: its charged labels, or null when it
   * failed without a charge — then claim again). Synchronous so that two identical requests can never
   * both find the key free and both pay.
   */
  claim(keyId: string, key: string, payloadSha256: string): { ticket: IdempotencyTicket } | { prior: Promise<Int32Array | null> } {
    const id = `${keyId}\n${key}`;
    const prior = this.entries.get(id);
    if (prior) {
      if (prior.payloadSha256 !== payloadSha256) {
        throw new TransferlabError(
          'idempotency_key_reused',
          `this ${IDEMPOTENCY_HEADER} was already used with a different body; use a new key for a new request`,
          422,
        );
      }
      this.entries.delete(id);
      this.entries.set(id, prior);
      return { prior: prior.done };
    }
    let settle: (labels: Int32Array | null) => void = () => {};
    const done = new Promise<Int32Array | null>((resolve) => (settle = resolve));
    const entry: Entry = { payloadSha256, done, settle, charged: false };
    this.entries.set(id, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return { ticket: { id, entry } };
  }

  /**
   * The labels an earlier request with this key was charged for (waiting for one in flight), or a
   * ticket for this request to be charged: loops over `claim` past attempts that failed.
   */
  async replayOrClaim(keyId: string, key: string, payloadSha256: string): Promise<{ labels: Int32Array } | { ticket: IdempotencyTicket }> {
    for (;;) {
      const c = this.claim(keyId, key, payloadSha256);
      if ('ticket' in c) return c;
      const labels = await c.prior;
      if (labels) return { labels };
    }
  }

  /** The request was charged for these labels: later repeats get them for free. */
  finish(t: IdempotencyTicket, labels: Int32Array): void {
    t.entry.charged = true;
    t.entry.settle(labels.slice());
  }

  /** Nothing was charged: forget the key so a retry is served (and charged) normally. */
  abandon(t: IdempotencyTicket): void {
    if (t.entry.charged) return; // charged already: the entry must keep serving repeats
    if (this.entries.get(t.id) === t.entry) this.entries.delete(t.id);
    t.entry.settle(null);
  }
}
