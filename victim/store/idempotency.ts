import { TransferlabError } from '../../shared/errors.js';
import { HEADERS, IDEMPOTENCY_KEY_PATTERN } from '../../shared/protocol/index.js';

/**
 * Idempotency-Key support for POST /v1/label. A client that was charged but never got its answer
 * (a timeout, a killed process) sends the same request with the same key again; the victim answers
 * with the labels it already charged for and charges nothing (audit outcome `replayed`).
 *
 * Keys are scoped to the caller (two API keys never share an entry) and must come with the same
 * body: the same key with a different payload is refused (422 idempotency_key_reused), following the
 * IETF httpapi Idempotency-Key draft. A repeat that arrives while the first is still being labelled
 * waits for it instead of paying again. A record expires `ttlMs` after its charge (default 24 h).
 *
 * `IdempotencyStore` is what the HTTP layer needs; this file holds the in-memory store (an LRU, also
 * the in-process part of the durable stores), `idempotency-file.ts` the file-backed default.
 */
export const IDEMPOTENCY_HEADER = HEADERS.idempotencyKey;
export const IDEMPOTENCY_CAPACITY = 10_000;
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const KEY_RULE = IDEMPOTENCY_KEY_PATTERN;

/** A request holding a key until it is charged (`finish`) or not (`abandon`). */
export interface IdempotencyTicket {
  readonly keyId: string;
  readonly key: string;
  readonly payloadSha256: string;
}

export type IdempotencyClaim = { labels: Int32Array } | { ticket: IdempotencyTicket };

export interface IdempotencyStore {
  /**
   * The labels an earlier request with this key (same caller, same body) was charged for — waiting
   * while that request is still in flight — or a ticket: this request now holds the key. Two
   * identical requests must never both get a ticket. Throws idempotency_key_reused (422) when the
   * key was used with another body.
   */
  replayOrClaim(keyId: string, key: string, payloadSha256: string): Promise<IdempotencyClaim>;
  /**
   * The request was charged for these labels: repeats get them for free until the record expires.
   * Repeats in this process see it at once; the promise resolves once the record is durable.
   */
  finish(ticket: IdempotencyTicket, labels: Int32Array): Promise<void>;
  /** Nothing was charged: release the key so a retry is served (and charged) normally. No-op after finish. */
  abandon(ticket: IdempotencyTicket): Promise<void>;
  /**
   * The record `finish` would write, for a budget store in the same database that writes it in the
   * same atomic step as the charge (Budgets.commitWithRecord); only the Redis store has one.
   */
  recordFor?(ticket: IdempotencyTicket, labels: Int32Array): IdempotencyRecordWrite;
  close(): Promise<void>;
}

/** A finished Idempotency-Key record as a key/value with its expiry, for a store that writes it itself. */
export interface IdempotencyRecordWrite {
  key: string;
  value: string;
  ttlMs: number;
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

export function keyReused(): TransferlabError {
  return new TransferlabError(
    'idempotency_key_reused',
    `this ${IDEMPOTENCY_HEADER} was already used with a different body; use a new key for a new request`,
    422,
  );
}

interface Entry {
  payloadSha256: string;
  /** Resolves with the charged labels, or null when the first request failed before a charge. */
  done: Promise<Int32Array | null>;
  settle: (labels: Int32Array | null) => void;
  charged: boolean;
  /** Epoch ms after which the record is forgotten; Infinity while the request is in flight. */
  expiresAt: number;
}

interface MemoryTicket extends IdempotencyTicket {
  readonly id: string;
  readonly entry: Entry;
}

export interface MemoryStoreOptions {
  capacity?: number;
  ttlMs?: number;
  clock?: () => Date;
}

/** In memory only: an LRU bounded by `capacity` entries (each at most maxBatch labels, ≤ 4 KB at 1000). */
export class MemoryIdempotencyStore implements IdempotencyStore {
  /** Insertion order = recency: a hit is re-inserted at the end, eviction takes the first. */
  private readonly entries = new Map<string, Entry>();
  readonly capacity: number;
  readonly ttlMs: number;
  private readonly clock: () => Date;

  constructor(opts: MemoryStoreOptions = {}) {
    this.capacity = opts.capacity ?? IDEMPOTENCY_CAPACITY;
    this.ttlMs = opts.ttlMs ?? IDEMPOTENCY_TTL_MS;
    this.clock = opts.clock ?? (() => new Date());
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Synchronously claim the key (`ticket`) or get the earlier request's outcome (`prior`: its
   * charged labels, or null when it failed without a charge — then claim again). Synchronous so
   * that two identical requests can never both find the key free and both pay.
   */
  claim(keyId: string, key: string, payloadSha256: string): { ticket: IdempotencyTicket } | { prior: Promise<Int32Array | null> } {
    const id = `${keyId}\n${key}`;
    const prior = this.entries.get(id);
    if (prior && prior.expiresAt > this.clock().getTime()) {
      if (prior.payloadSha256 !== payloadSha256) throw keyReused();
      this.entries.delete(id);
      this.entries.set(id, prior);
      return { prior: prior.done };
    }
    let settle: (labels: Int32Array | null) => void = () => {};
    const done = new Promise<Int32Array | null>((resolve) => (settle = resolve));
    const entry: Entry = { payloadSha256, done, settle, charged: false, expiresAt: Infinity };
    this.put(id, entry);
    const ticket: MemoryTicket = { keyId, key, payloadSha256, id, entry };
    return { ticket };
  }

  async replayOrClaim(keyId: string, key: string, payloadSha256: string): Promise<IdempotencyClaim> {
    for (;;) {
      const c = this.claim(keyId, key, payloadSha256);
      if ('ticket' in c) return c;
      const labels = await c.prior;
      if (labels) return { labels };
    }
  }

  /** Marks the entry charged and returns its expiry (epoch ms), for stores that persist it. */
  settle(t: IdempotencyTicket, labels: Int32Array): number {
    const { entry } = t as MemoryTicket;
    entry.charged = true;
    entry.expiresAt = this.clock().getTime() + this.ttlMs;
    entry.settle(labels.slice());
    return entry.expiresAt;
  }

  finish(t: IdempotencyTicket, labels: Int32Array): Promise<void> {
    this.settle(t, labels);
    return Promise.resolve();
  }

  abandon(t: IdempotencyTicket): Promise<void> {
    const { id, entry } = t as MemoryTicket;
    if (!entry.charged) {
      if (this.entries.get(id) === entry) this.entries.delete(id);
      entry.settle(null);
    }
    return Promise.resolve();
  }

  /** Put back a record charged in an earlier run (the durable stores, at start-up). */
  restore(keyId: string, key: string, payloadSha256: string, labels: Int32Array, expiresAt: number): void {
    if (expiresAt <= this.clock().getTime()) return;
    const done = Promise.resolve(labels);
    this.put(`${keyId}\n${key}`, { payloadSha256, done, settle: () => {}, charged: true, expiresAt });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private put(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
