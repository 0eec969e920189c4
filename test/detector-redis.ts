import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type TestRedis } from '../scripts/redis-server.js';
import type { QueryDetector } from '../victim/detect/detectors.js';
import { SharedDetectorState, detectorNamespace, type SharedDetectorOptions } from '../victim/detect/shared-state.js';

/**
 * What the shared-detector tests set up on a real Redis, once: a private redis-server for the calling
 * describe block (started in its beforeAll, stopped in its afterAll with every connection handed out),
 * and replicas as victim processes have them — each a detector set of its own and a SharedDetectorState
 * over its own connection, in the namespace the detector's settings give.
 */
export function detectorRedis() {
  let redis: TestRedis | undefined;
  const connections: Redis[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of connections) c.disconnect();
    await redis?.stop();
  });
  /** A new connection to the block's redis-server, closed after the block. */
  const connect = (): Redis => {
    if (!redis) throw new Error('detectorRedis: connect() before its beforeAll started redis-server');
    const c = new Redis(redis.url);
    connections.push(c);
    return c;
  };
  /** One replica: `detector`, and its state shared through a connection of its own. */
  const replica = (detector: QueryDetector, options?: SharedDetectorOptions) => ({ detector, state: new SharedDetectorState(connect(), detectorNamespace(detector), options) });
  return { connect, replica };
}
