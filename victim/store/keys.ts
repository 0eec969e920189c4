import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { settingsIssues } from '../../shared/settings-errors.js';

/**
 * API keys. The keys file is {"keys":[{"id":"alice","key":"<secret>","budget":1000}]}; a missing
 * budget means unlimited (or --budget when given). Only sha256 digests of the secrets are kept in
 * memory, compared in constant time, and no key ever reaches a log or an error message.
 */
export const ANONYMOUS = 'anonymous';
/** Short keys are guessable; refuse them rather than run a "careful" service with a weak secret. */
export const MIN_KEY_LENGTH = 16;

/**
 * The bearer token of a request's one Authorization header; undefined when there is none or it is not
 * `Bearer <token>`. Node keeps only the first of repeated Authorization headers, while a proxy in front
 * may read the last: a request with more than one is refused (400) before either is looked at, so the
 * victim and a proxy can never disagree about who is asking.
 */
export function bearerToken(rawHeaders: readonly string[]): string | undefined {
  let header: string | undefined;
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() !== 'authorization') continue;
    count++;
    header = rawHeaders[i + 1];
  }
  if (count > 1) {
    throw new TransferlabError('bad_request', `the request has ${count} Authorization headers; send exactly one: Authorization: Bearer <key>`, 400);
  }
  return header ? /^Bearer[ ]+([^\s]+)\s*$/i.exec(header)?.[1] : undefined;
}

export interface Principal {
  id: string;
  /** Images this caller may have labelled in total; null = unlimited. */
  limit: number | null;
}

const KeysFile = z.strictObject({
  keys: z
    .array(
      z.strictObject({
        id: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'ids are 1-64 characters from A-Z a-z 0-9 _ . @ -'),
        key: z.string().min(MIN_KEY_LENGTH, `keys must be at least ${MIN_KEY_LENGTH} characters`),
        budget: z.number().int().nonnegative().optional(),
      }),
    )
    .min(1, 'list at least one key'),
});

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class KeyRing {
  private readonly entries: { principal: Principal; digest: Buffer }[];

  constructor(keys: { id: string; key: string; budget?: number | null }[], defaultBudget: number | null = null) {
    this.entries = keys.map((k) => ({
      principal: { id: k.id, limit: k.budget ?? defaultBudget },
      digest: digest(k.key),
    }));
  }

  static fromFile(path: string, defaultBudget: number | null = null): KeyRing {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'file not found' : err.message;
      throw new TransferlabError('invalid_keys_file', `cannot read keys file ${path}: ${why}`);
    }
    const parsed = KeysFile.safeParse(raw);
    if (!parsed.success) {
      // zod's issues name paths and rules, never the offending values, so no secret leaks here.
      const issues = settingsIssues(KeysFile, parsed.error).join('; ');
      throw new TransferlabError(
        'invalid_keys_file',
        `keys file ${path} is invalid (${issues}); expected {"keys":[{"id":"alice","key":"<secret, ≥${MIN_KEY_LENGTH} chars>","budget":1000}]}`,
      );
    }
    const ids = new Set<string>();
    const secrets = new Set<string>();
    for (const k of parsed.data.keys) {
      if (ids.has(k.id)) throw new TransferlabError('invalid_keys_file', `keys file ${path} lists id "${k.id}" twice`);
      const d = digest(k.key).toString('hex');
      if (secrets.has(d)) throw new TransferlabError('invalid_keys_file', `keys file ${path} gives two ids the same key`);
      ids.add(k.id);
      secrets.add(d);
    }
    return new KeyRing(parsed.data.keys, defaultBudget);
  }

  get size(): number {
    return this.entries.length;
  }

  principals(): Principal[] {
    return this.entries.map((e) => ({ ...e.principal }));
  }

  /**
   * The principal owning `key`, or undefined. Every stored digest is compared, in constant time,
   * whether or not an earlier one matched, so timing reveals neither the key nor its position.
   */
  authenticate(key: string): Principal | undefined {
    const presented = digest(key);
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.digest) && !found) found = e.principal;
    }
    return found;
  }
}
