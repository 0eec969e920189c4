import { TransferlabError } from './errors.js';

/**
 * A Redis address given on the command line (`--queue`, `--store`): redis://[user:pass@]HOST:PORT[/DB].
 * Checked up front so a typo is a clear error at start-up instead of a connection retried forever.
 */
export interface RedisAddress {
  url: string;
  host: string;
  port: number;
  db: number;
  /** The URL without credentials, for logs and messages. */
  shown: string;
}

export function parseRedisUrl(url: string, flag: string): RedisAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TransferlabError('invalid_redis_url', `${flag} must be a URL like redis://127.0.0.1:6379/0 (got ${JSON.stringify(url.slice(0, 80))})`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new TransferlabError('invalid_redis_url', `${flag} must start with redis:// or rediss:// (got ${u.protocol}//…)`);
  }
  const port = u.port === '' ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!Number.isInteger(db) || db < 0 || db > 15) {
    throw new TransferlabError('invalid_redis_url', `${flag}: the database number after the port must be 0-15 (got ${JSON.stringify(path)})`);
  }
  if (u.hostname === '') throw new TransferlabError('invalid_redis_url', `${flag} names no host (e.g. redis://127.0.0.1:6379/0)`);
  return { url, host: u.hostname, port, db, shown: `${u.protocol}//${u.host}/${db}` };
}
