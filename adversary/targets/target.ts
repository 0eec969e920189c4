/**
 * A target: how the oracle reaches the model, wherever it is served (ARCHITECTURE.md, docs/targets.md).
 * The oracle core (adversary/oracle/core.ts) does everything that does not depend on the server —
 * quantisation, the answer cache, counting by purpose, the ledger, resume — and hands a target one
 * batch at a time as the bytes a real client would send; the target turns them into its server's
 * request and its server's answer into labels (and probabilities). Adding a kind of server is one
 * file exporting a TargetFactory and one line in registry.ts.
 */
import type { BatchAnswer, Budget, PixelFormat } from '../oracle/core.js';
import type { KeyOrder } from '../oracle/client.js';
import type { QueryPurpose, VictimInfo } from '../oracle/oracle.js';
import type { RetryPolicy } from '../oracle/retry.js';
import type { TargetSettings } from './settings.js';
import type { Threat } from '../../shared/protocol/output.js';

export type { BatchAnswer, Budget, VictimInfo };

export interface Target {
  /** The kind (registry name) and base URL, for messages. */
  readonly kind: string;
  readonly url: string;
  /**
   * The model as the attack sees it: inputShape [H, W, C] (images row-major HWC whatever the server's
   * layout), classes, maxBatch (most images per send), and `output`, the output policy
   * (shared/protocol/output.ts) the endpoint gives: `label`, `topk:K` or `scores`. Reads the server's
   * metadata (free) and checks it against the settings, so a wrong shape or output is found here,
   * before the first paid query.
   */
  describe(): Promise<VictimInfo>;
  /**
   * One batch: `count` images as wire bytes (count × H × W × C in the oracle's pixel format, uint8 or
   * float32 little-endian), row-major HWC. Returns their top-1 labels and, when the endpoint gives them,
   * `scores` (count × classes probabilities, NaN for a class not given). Transient failures are retried
   * inside (oracle/retry.ts); a refusal throws a VictimError naming the target, URL and what was wrong.
   */
  send(body: Uint8Array, count: number, purpose: QueryPurpose): Promise<BatchAnswer>;
  /** The key's budget as the server tells it, charging nothing (absent or null: it does not say); with Sybil keys, all of theirs summed. */
  budget?(): Promise<Budget | null>;
  /** Keys send() spreads batches over (Sybil), each answer naming its own in `key` (absent: 1). */
  readonly keys?: number;
  close(): void | Promise<void>;
}

/** What every target is built with besides its own settings. */
export interface TargetContext extends RetryPolicy {
  /** Base URL, normalised (no trailing slash). */
  url: string;
  /** Sent as `Authorization: Bearer <key>` where the server takes one. */
  apiKey?: string;
  /** The pixel format of the bytes send() receives. */
  format: PixelFormat;
  /** The run folder's identity (oracle-id): scopes idempotency keys, so a retry or resume is not charged twice. */
  scope: string;
  /** Per-request timeout (default 30000 ms); a timeout is retried like a network error. */
  timeoutMs?: number;
  /**
   * The campaign's threat model: a target whose server has a label-only route (transferlab's
   * /v1/label) uses it in a label threat; scores, when asked for, come from its richer route.
   */
  threat?: Threat;
  /**
   * Sybil: the requests spread over these keys instead of `apiKey`, in turn or one at random
   * (`keyOrder`). Only a target that can say which key carried each batch takes them (transferlab);
   * createTargetOracle refuses them for the others.
   */
  apiKeys?: readonly string[];
  keyOrder?: KeyOrder;
  /** Sybil against a victim that blocks flagged keys: a blocked key is dropped and the request goes to the next (oracle/client.ts). */
  retireBlockedKeys?: boolean;
}

export type TargetFactory = (settings: TargetSettings, ctx: TargetContext) => Target;
