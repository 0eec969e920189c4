import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { HEADERS, parseOutputPolicy, predictResponseSchema } from '../shared/protocol/index.js';
import type { LedgerRecord } from '../victim/store/ledger.js';
import { BudgetBook } from '../victim/store/ledger.js';
import { MemoryAuditLog } from '../victim/store/audit.js';
import { KeyRing } from '../victim/store/keys.js';
import { createApp } from '../victim/http/app.js';
import { MicroBatcher } from '../victim/http/batcher.js';
import { startServer } from '../victim/http/server.js';
import { openServedModel, type ServedModel } from '../victim/model/served-model.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, bytes, keyedVictimFiles, readJsonl, startKeyedVictim } from './victim-client.js';
import { main as victimMain } from '../victim/cli.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { ExtractionWatch } from '../victim/detect/detection.js';

/**
 * The output policy over real HTTP, on every route a victim serves: /v1/label, /v1/predict, the Open
 * Inference Protocol's infer and TF Serving's predict. What leaves the service is exactly what the
 * policy allows — a label-only victim never sends a probability anywhere (its /v1/predict is a 403,
 * its protocol answers one-hot) — and every route charges the budget the same, one image one query.
 * The label-only victim and the rounded one are real victim processes (their flags through the CLI);
 * topk:2 and scores are the same app with the same model served in this process over loopback, so
 * the suite starts two processes, not four, on a 2-core machine.
 */
const KEY = 'outputs-key-0123456789abcdef';
const N = 3;
const mnist = loadMnist('test');
const u8 = mnist.pixels.subarray(0, N * IMAGE_SIZE);
const floats = Array.from(u8, (v) => v / 255);
const image = (i: number) => floats.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
/** One image nested [28][28][1], as TF Serving's row format takes it. */
const nested = (i: number) => Array.from({ length: 28 }, (_, y) => image(i).slice(y * 28, y * 28 + 28).map((v) => [v]));

const POLICIES = { label: [], topk: ['--output', 'topk:2'], scores: ['--output', 'scores'], rounded: ['--output', 'scores', '--round', '2'] } as const;
type Policy = keyof typeof POLICIES;
const IN_PROCESS: Policy[] = ['topk', 'scores'];
const victims = {} as Record<Policy, { url: string; stop: () => Promise<unknown> }>;
let dir: string;
let served: ServedModel | undefined;

/** The victim's app over the real served model, in this process, with its output policy from the same flags. */
async function inProcess(modelDir: string, p: Policy, extra: Partial<Parameters<typeof createApp>[0]> = {}) {
  served ??= await openServedModel(modelDir);
  const model = served;
  const batcher = new MicroBatcher((images, count) => model.predict(images, count), { maxImages: 1024, maxDelayMs: 0, pixelsPerImage: IMAGE_SIZE });
  const records: LedgerRecord[] = [];
  const app = createApp({
    label: (images, count) => batcher.label(images, count),
    predict: (images, count) => batcher.predict(images, count),
    model: model.info,
    keys: new KeyRing([{ id: 'k', key: KEY, budget: 1000 }]),
    budgets: new BudgetBook({ append: async (r: LedgerRecord) => void records.push(r) }),
    audit: new MemoryAuditLog(),
    maxBatch: 1000,
    rateLimit: 0,
    output: { policy: parseOutputPolicy((POLICIES[p] as readonly string[])[1] ?? 'label') },
    protocols: ['transferlab', 'oip', 'tfserving'],
    ...extra,
  });
  const server = await startServer(app, '127.0.0.1', 0);
  return { url: server.url, stop: () => server.close() };
}

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const backend = (await initBackend()).backend;
  dir = mkdtempSync(join(tmpdir(), 'transferlab-outputs-'));
  await Promise.all(
    (Object.keys(POLICIES) as Policy[]).map(async (p) => {
      if (IN_PROCESS.includes(p)) return void (victims[p] = await inProcess(modelDir, p));
      victims[p] = await startKeyedVictim({
        dir, model: modelDir, backend, name: p, keys: [{ id: 'k', key: KEY, budget: 1000 }], rateLimit: 0,
        args: ['--protocol', 'transferlab,oip,tfserving', '--log-level', 'warn', ...POLICIES[p]],
      });
    }),
  );
}, 180_000);

afterAll(async () => {
  await Promise.all(Object.values(victims).map((v) => v.stop()));
  await served?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Raw {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

async function send(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Raw> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...bearer(KEY), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown>, text };
}

const used = async (base: string) => ((await (await fetch(`${base}/v1/budget`, { headers: bearer(KEY) })).json()) as { used: number }).used;

/** The four paid routes' requests for the N test images. */
const oipBody = { id: 'req-1', inputs: [{ name: 'images', shape: [N, 28, 28, 1], datatype: 'UINT8', data: Array.from(u8) }] };
const tfsRows = { instances: Array.from({ length: N }, (_, i) => nested(i)) };

interface Seen {
  labels: number[];
  predict: Raw;
  oip: number[][];
  tfs: number[][];
}
const seen = {} as Record<Policy, Seen>;

async function askAll(p: Policy): Promise<Seen> {
  const base = victims[p].url;
  const label = await fetch(`${base}/v1/label`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', ...bearer(KEY) }, body: bytes(u8) });
  const labelBody = (await label.json()) as { labels: number[] };
  expect(Object.keys(labelBody).sort()).toEqual(['budget', 'labels']);
  const predict = await send(base, '/v1/predict', { inputs: Array.from({ length: N }, (_, i) => image(i)) });
  const oip = await send(base, '/v2/models/model/infer', oipBody);
  expect(oip.status, oip.text).toBe(200);
  expect(oip.body).toMatchObject({ model_name: 'model', model_version: '1', id: 'req-1' });
  const out = (oip.body.outputs as { name: string; shape: number[]; datatype: string; data: number[] }[])[0];
  expect(out).toMatchObject({ name: 'probabilities', shape: [N, 10], datatype: 'FP32' });
  const tfs = await send(base, '/v1/models/model:predict', tfsRows);
  expect(tfs.status, tfs.text).toBe(200);
  const rows = (flat: number[]) => Array.from({ length: N }, (_, i) => flat.slice(i * 10, i * 10 + 10));
  return { labels: labelBody.labels, predict, oip: rows(out.data), tfs: tfs.body.predictions as number[][] };
}

describe('what leaves the victim under each output policy', () => {
  beforeAll(async () => {
    for (const p of Object.keys(POLICIES) as Policy[]) seen[p] = await askAll(p);
  }, 120_000);

  it('the same labels on every route and under every policy (the label route is unchanged)', () => {
    const labels = seen.label.labels;
    expect(labels).toHaveLength(N);
    for (const p of Object.keys(POLICIES) as Policy[]) {
      expect(seen[p].labels, p).toEqual(labels);
      for (const rows of [seen[p].oip, seen[p].tfs]) expect(rows.map((r) => r.indexOf(Math.max(...r))), p).toEqual(labels);
    }
  });

  it('label: /v1/predict is a 403 naming the policy; OIP and TF Serving answer one-hot rows — not a single probability', () => {
    const { predict, oip, tfs, labels } = seen.label;
    expect(predict.status).toBe(403);
    expect(predict.body.error).toMatchObject({ code: 'output_not_allowed' });
    expect((predict.body.error as { message: string }).message).toMatch(/output policy is "label"/);
    const oneHot = labels.map((l) => Array.from({ length: 10 }, (_, k) => (k === l ? 1 : 0)));
    expect(oip).toEqual(oneHot);
    expect(tfs).toEqual(oneHot);
    // Nothing in the bodies but integers: labels, budget counts, one-hot entries, shapes.
    for (const text of [predict.text, JSON.stringify(oip), JSON.stringify(tfs)]) expect(text).not.toMatch(/\d\.\d/);
  });

  it('topk:2: the two best {class, p}, the label first, and zero everywhere else on the protocol routes', () => {
    const { predict, oip, tfs, labels } = seen.topk;
    expect(predict.status, predict.text).toBe(200);
    const answer = predictResponseSchema.parse(predict.body);
    expect(answer.scores).toBeUndefined();
    expect(answer.top?.map((row) => row.length)).toEqual([2, 2, 2]);
    answer.top?.forEach((row, i) => {
      expect(row[0].class).toBe(labels[i]);
      expect(row[0].p).toBeGreaterThanOrEqual(row[1].p);
      for (const rows of [oip, tfs]) {
        expect(rows[i].filter((v) => v !== 0)).toHaveLength(2);
        for (const { class: c, p } of row) expect(rows[i][c]).toBe(p);
      }
    });
  });

  it('scores: every class\'s probability, the same on every route; --round 2 rounds each to 2 decimals', async () => {
    const scores = predictResponseSchema.parse(seen.scores.predict.body).scores as number[][];
    expect(scores.map((r) => r.length)).toEqual([10, 10, 10]);
    for (const row of scores) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    for (const rows of [seen.scores.oip, seen.scores.tfs]) rows.forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo(scores[i][k], 6)));
    const rounded = predictResponseSchema.parse(seen.rounded.predict.body).scores as number[][];
    for (const rows of [rounded, seen.rounded.oip, seen.rounded.tfs]) {
      rows.forEach((r, i) =>
        r.forEach((v, k) => {
          expect(Math.abs(v * 100 - Math.round(v * 100))).toBeLessThan(1e-9);
          expect(Math.abs(v - scores[i][k])).toBeLessThanOrEqual(0.005 + 1e-6);
        }),
      );
    }
    const info = (await (await fetch(`${victims.rounded.url}/v1/info`)).json()) as { output: string; round?: number };
    expect(info).toMatchObject({ output: 'scores', round: 2 });
    expect(((await (await fetch(`${victims.label.url}/v1/info`)).json()) as { output: string }).output).toBe('label');
  });
});

describe('budgets, keys, idempotency and the audit log: the same on every route', () => {
  it('charges one query per image on each route, nothing for a 403 or a malformed body, and replays an Idempotency-Key free', async () => {
    const base = victims.label.url;
    const before = await used(base);
    const steps: [string, () => Promise<Raw>, number][] = [
      ['predict 403', () => send(base, '/v1/predict', { inputs: [image(0)] }), 0],
      ['oip', () => send(base, '/v2/models/model/infer', oipBody), N],
      ['tfserving rows', () => send(base, '/v1/models/model:predict', tfsRows), N],
      ['tfserving columns', () => send(base, '/v1/models/model/versions/1:predict', { inputs: [nested(0)] }), 1],
      ['oip malformed', () => send(base, '/v2/models/model/infer', { inputs: [{ ...oipBody.inputs[0], shape: [N, 28, 28, 3] }] }), 0],
      ['tfserving malformed', () => send(base, '/v1/models/model:predict', { instances: [[0.5]] }), 0],
      ['oip UINT8 out of range', () => send(base, '/v2/models/model/infer', { inputs: [{ ...oipBody.inputs[0], data: Array(N * IMAGE_SIZE).fill(256) }] }), 0],
      ['oip cut short', () => send(base, '/v2/models/model/infer', JSON.stringify(oipBody).slice(0, 500)), 0],
      ['oip wrong input name', () => send(base, '/v2/models/model/infer', { inputs: [{ ...oipBody.inputs[0], name: 'input_1' }] }), 0],
      ['oip binary extension', () => send(base, '/v2/models/model/infer', oipBody, { 'Inference-Header-Content-Length': '10' }), 0],
      ['tfserving both formats', () => send(base, '/v1/models/model:predict', { ...tfsRows, inputs: [nested(0)] }), 0],
      ['tfserving wrong signature', () => send(base, '/v1/models/model:predict', { ...tfsRows, signature_name: 'other' }), 0],
      ['tfserving NaN-free JSON only', () => send(base, '/v1/models/model:predict', '{"instances": [NaN]}'), 0],
    ];
    let expected = before;
    for (const [what, step, charge] of steps) {
      const reply = await step();
      expected += charge;
      expect(await used(base), what).toBe(expected);
      if (charge === 0) {
        expect([reply.status >= 400 && reply.status < 500, what]).toEqual([true, what]);
        // Each protocol's own error shape, the transferlab code beside it.
        if (what !== 'predict 403') expect([typeof reply.body.error, (reply.headers.get('X-Error-Code') ?? '') !== '', what]).toEqual(['string', true, what]);
      }
    }
    const idem = { [HEADERS.idempotencyKey]: 'outputs-oip-1' };
    const first = await send(base, '/v2/models/model/infer', oipBody, idem);
    const again = await send(base, '/v2/models/model/infer', oipBody, idem);
    expect(again.headers.get(HEADERS.idempotentReplayed)).toBe('true');
    expect(again.body.outputs).toEqual(first.body.outputs);
    expect(await used(base)).toBe(expected + N);
    const audit = readJsonl<{ route?: string; outcome: string; images: number }>(keyedVictimFiles(dir, 'label').audit).filter((e) => 'outcome' in e);
    // The policy tests asked once before this test, then the steps above, then the first of the idempotent pair.
    expect(audit.filter((e) => e.route === 'oip' && e.outcome === 'answered').map((e) => e.images)).toEqual([N, N, N]);
    expect(audit.some((e) => e.route === 'oip' && e.outcome === 'replayed')).toBe(true);
    expect(audit.filter((e) => e.route === 'predict').map((e) => e.outcome)).toEqual(['rejected', 'rejected']);
  });

  it('asks for the key on the protocol routes and answers in each protocol\'s error shape', async () => {
    const base = victims.topk.url;
    for (const path of ['/v2/models/model/infer', '/v1/models/model:predict']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(tfsRows), signal: AbortSignal.timeout(15_000) });
      expect(res.status).toBe(401);
      expect(res.headers.get('X-Error-Code')).toBe('missing_api_key');
      expect(typeof ((await res.json()) as { error: unknown }).error).toBe('string');
    }
    const unknown = await send(base, '/v2/models/other/infer', oipBody);
    expect([unknown.status, unknown.headers.get('X-Error-Code')]).toEqual([404, 'unknown_model']);
    expect(unknown.body.error).toMatch(/serves "model"/);
  });
});

describe('the OpenAPI document and the command line follow the policy', () => {
  it("documents /v1/predict's answer for the served policy, and only its 403 on a label-only victim", async () => {
    const docOf = async (p: Policy) => (await (await fetch(`${victims[p].url}/v1/openapi.json`)).json()) as { paths: Record<string, { post: { responses: Record<string, unknown> } }>; components: object };
    for (const p of ['topk', 'rounded'] as Policy[]) {
      const doc = await docOf(p);
      const ajv = new Ajv2020({ strict: false });
      ajv.addSchema({ $id: 'doc', components: doc.components });
      const validate = ajv.compile({ $ref: 'doc#/components/schemas/Predictions' });
      expect(validate(seen[p].predict.body), `${p}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      // Another policy's answer does not fit: the document is pinned to this one.
      expect(validate(seen[p === 'topk' ? 'scores' : 'topk'].predict.body)).toBe(false);
    }
    const label = await docOf('label');
    expect(Object.keys(label.paths['/v1/predict'].post.responses).sort()).toEqual(['401', '403', '405']);
    expect(JSON.stringify(label.components)).not.toContain('Predictions');
  });

  it('refuses a bad --output, --round or --protocol on one line, before anything starts', async () => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const refused = async (argv: string[]) => ((await victimMain(argv).catch((e: unknown) => e)) as Error).message;
      expect(await refused(['--output', 'topk:0'])).toMatch(/--output: .*not one of label, topk:K/);
      expect(await refused(['--output', 'label', '--round', '2'])).toMatch(/--round .* --output topk:K or scores/);
      expect(await refused(['--output', 'scores', '--round', '7'])).toMatch(/--round must be an integer number of decimals in 1..6/);
      expect(await refused(['--protocol', 'oip,grpc'])).toMatch(/--protocol grpc is not one of transferlab, oip, tfserving/);
      expect(await refused(['--model-name', 'a/b'])).toMatch(/--model-name must be/);
    } finally {
      vi.restoreAllMocks();
    }
  });
});

describe('the serving protocols on their own, and behind the detectors', () => {
  it('without transferlab, serves only the chosen protocol (and /healthz)', async () => {
    const v = await inProcess(await ensureTestVictim(), 'label', { protocols: ['oip'] });
    try {
      const status = async (path: string) => (await fetch(`${v.url}${path}`)).status;
      expect(await status('/v2/health/ready')).toBe(200);
      expect(await status('/healthz')).toBe(200);
      expect(await status('/v1/info')).toBe(404);
      expect(await status('/v1/models/model/metadata')).toBe(404);
      expect((await send(v.url, '/v1/label', { inputs: [image(0)] })).status).toBe(404);
      expect((await send(v.url, '/v2/models/model/infer', oipBody)).status).toBe(200);
    } finally {
      await v.stop();
    }
  });

  it('a client the detector blocks is refused on the protocol routes too, in their error shape, charged nothing', async () => {
    const audit = new MemoryAuditLog();
    const watch = new ExtractionWatch(detectorSet({ blacklight: new BlacklightDetector({ minMatches: 2 }) }), 'block', audit);
    const v = await inProcess(await ensureTestVictim(), 'label', { watch, audit });
    try {
      const one = { inputs: [{ name: 'images', shape: [1, 28, 28, 1], datatype: 'UINT8', data: Array.from(u8.subarray(0, IMAGE_SIZE)) }] };
      const statuses: number[] = [];
      let refused: Raw | undefined;
      for (let i = 0; i < 8 && !refused; i++) {
        const r = await send(v.url, i % 2 ? '/v2/models/model/infer' : '/v1/models/model:predict', i % 2 ? one : { instances: [nested(0)] });
        statuses.push(r.status);
        if (r.status !== 200) refused = r;
      }
      expect(refused?.status, statuses.join(' ')).toBe(403);
      expect(refused?.headers.get('X-Error-Code')).toBe('extraction_suspected');
      expect(typeof refused?.body.error).toBe('string');
      const charged = audit.entries.filter((e) => e.outcome === 'answered').length;
      expect(await used(v.url)).toBe(charged);
      expect(audit.events.some((e) => e.event === 'extraction_suspected')).toBe(true);
    } finally {
      await v.stop();
    }
  });
});
