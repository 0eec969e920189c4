import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { isTransferlabError, type TransferlabError } from '../shared/errors.js';
import { ROUTES, ROUTE_NAMES, allowedMethods, contractClient, fetchTransport, type ImagesBody, type RouteName } from '../shared/protocol/index.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, call, startKeyedVictim, victimClient, type KeyedVictim } from './victim-client.js';

/**
 * The contract's route table against a real victim process: every route is served on the method the
 * table gives (and documented under it in the OpenAPI document), any other method is refused with
 * 405 naming it, and a key is needed exactly where the table says; and the contract's clients refuse
 * a 2xx answer that does not fit the route's schema.
 */
const KEY = 'route-table-key-0123456789abcdef';
const pixels = loadMnist('test').pixels.subarray(0, 2 * IMAGE_SIZE);
const images: ImagesBody = { format: 'uint8', bytes: pixels.subarray(0, IMAGE_SIZE) };

let victim: KeyedVictim;
let dir: string;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const backend = (await initBackend()).backend;
  dir = mkdtempSync(join(tmpdir(), 'transferlab-routes-'));
  // scores: so that every route of the table, /v1/predict included, answers 200.
  victim = await startKeyedVictim({ dir, model: modelDir, backend, keys: [{ id: 'r', key: KEY, budget: 100 }], args: ['--output', 'scores'] });
});

afterAll(async () => {
  expect(await victim?.stop()).toBe(0);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One call of each route through the typed client (a label call sends one image). */
const callRoute = (name: RouteName, apiKey?: string) => {
  const client = victimClient(victim.url, apiKey);
  return name === 'label' || name === 'predict' ? client[name]({ images }) : client[name]();
};

describe('the route table, served by a real victim', () => {
  it.each(ROUTE_NAMES)('%s: answered on its method with a body fitting its schema, documented under that method', async (name) => {
    const route = ROUTES[name];
    const answer = await callRoute(name, KEY);
    expect(answer).toMatchObject({ ok: true, status: 200 });
    const doc = await victimClient(victim.url).openapi();
    expect(doc.ok && (doc.value.paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()], `${route.method} ${route.path} documented`).toBeTruthy();
  });

  it.each(ROUTE_NAMES)('%s: any other method is refused with 405 and an Allow header naming the table\'s', async (name) => {
    const route = ROUTES[name];
    for (const method of ['GET', 'POST', 'PUT', 'DELETE'].filter((m) => m !== route.method)) {
      const reply = await call(`${victim.url}${route.path}`, { method, headers: bearer(KEY) });
      expect([method, reply.status, reply.body.error?.code]).toEqual([method, 405, 'method_not_allowed']);
      expect(reply.headers.get('Allow')).toBe(allowedMethods(route));
    }
  });

  it('needs a key exactly on the routes the table marks keyed', async () => {
    const without = await Promise.all(ROUTE_NAMES.map(async (name) => [name, (await callRoute(name)).status] as const));
    expect(Object.fromEntries(without)).toEqual(Object.fromEntries(ROUTE_NAMES.map((name) => [name, ROUTES[name].keyed ? 401 : 200])));
  });

  it('takes a JSON body through the same client, and answers the same labels as for the bytes', async () => {
    const client = victimClient(victim.url, KEY);
    const bytes = await client.label({ images: { format: 'uint8', bytes: pixels } });
    const inputs = [0, 1].map((i) => Array.from(pixels.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE), (v) => v / 255));
    const json = await client.label({ images: { json: JSON.stringify({ inputs }) } });
    expect(bytes.ok && json.ok && json.value.labels).toEqual(bytes.ok && bytes.value.labels);
    expect(bytes.ok && bytes.value.labels).toHaveLength(2);
  });
});

/** A server answering 200 with a fixed body per path: a broken or foreign "victim". */
async function misfitServer(bodies: Record<string, unknown>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(bodies[req.url ?? ''] ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function refusal(p: Promise<unknown>): Promise<TransferlabError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  if (!isTransferlabError(e)) throw new Error(`expected a TransferlabError, got ${String(e)}`);
  return e;
}

describe('the contract refuses answers that do not fit', () => {
  const info = { dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: 8, output: 'label' };

  it('the typed client: each route with its own code, naming the path', async () => {
    const { url, server } = await misfitServer({
      [ROUTES.info.path]: { dataset: 'mnist', classes: 10 },
      [ROUTES.label.path]: { labels: [1.5], budget: { used: 1, limit: null } },
      [ROUTES.budget.path]: { used: -1, limit: null },
      [ROUTES.health.path]: { status: 'fine' },
    });
    try {
      const client = contractClient(url, fetchTransport());
      const info = await refusal(client.info());
      expect([info.code, info.status]).toEqual(['victim_info_invalid', 502]);
      expect(info.message).toContain(`${url}${ROUTES.info.path} did not answer a victim description`);
      const label = await refusal(client.label({ images }));
      expect(label.code).toBe('victim_bad_response');
      expect(label.message).toContain(`${ROUTES.label.path} answered no {labels,budget}`);
      expect((await refusal(client.budget())).message).toContain('answered no {used,limit}');
      expect((await refusal(client.health())).code).toBe('victim_bad_response');
    } finally {
      server.close();
    }
  });

  it('the adversary oracle: a label answer without its budget is refused, not retried, nothing counted', async () => {
    const { url, server } = await misfitServer({ [ROUTES.info.path]: info, [ROUTES.label.path]: { labels: [3] } });
    const oracle = await createHttpOracle({ url, retries: { baseDelayMs: 5, maxDelayMs: 20, windowMs: 2000 } });
    try {
      const e = await refusal(oracle.label(new Float32Array(IMAGE_SIZE), 1, 'attack'));
      expect([e.code, e.status]).toEqual(['victim_bad_response', 502]);
      expect(e.message).toMatch(/\/v1\/label answered no \{labels,budget\}: .*budget/s);
      expect(oracle.counts().attack).toBe(0);
    } finally {
      await oracle.close();
      server.close();
    }
  });
});
