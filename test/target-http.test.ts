/**
 * The http target against two JSON APIs written here over the same TF.js model: one takes flat lists of
 * 0..255 integers and answers labels, the other takes base64 PNGs in an item template, describes its
 * model at a probe route and answers scores (the label is their argmax). Each keeps its own count.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { CLASSES, images, json, SHAPE, startServer, tinyModel } from './tiny-model-server.js';

const KEY = 'api-key-42';
let model: Awaited<ReturnType<typeof tinyModel>>;
let flat: Awaited<ReturnType<typeof startServer>>;
let png: Awaited<ReturnType<typeof startServer>>;
const dir = mkdtempSync(join(tmpdir(), 'tl-http-target-'));

beforeAll(async () => {
  model = await tinyModel();
  flat = await startServer((req, body, res, log) => {
    if (req.headers['x-api-key'] !== KEY) return json(res, 403, { error: 'forbidden' });
    const { inputs } = JSON.parse(body.toString()) as { inputs: number[][] };
    if (inputs.length > 4 || inputs.some((x) => x.length !== 16 || x.some((v) => !Number.isInteger(v) || v < 0 || v > 255))) return json(res, 400, { error: 'bad inputs' });
    log.images += inputs.length;
    const labels = model.labels(Float32Array.from(inputs.flat(), (v) => v / 255), inputs.length);
    json(res, 200, { results: labels.map((label) => ({ label })) });
  });
  png = await startServer((req, body, res, log) => {
    if (req.method === 'GET' && req.url === '/v1/models/tiny') return json(res, 200, { model: { input: { shape: SHAPE }, classes: CLASSES } });
    if (req.method !== 'PUT' || req.url !== '/v1/models/tiny:classify') return json(res, 404, { error: `no ${req.method} ${req.url}` });
    const { instances } = JSON.parse(body.toString()) as { instances: { b64: string }[] };
    const pixels = new Float32Array(instances.length * 16);
    instances.forEach(({ b64 }, i) => {
      const decoded = PNG.sync.read(Buffer.from(b64, 'base64'));
      for (let p = 0; p < 16; p++) pixels[i * 16 + p] = decoded.data[p * 4] / 255;
    });
    log.images += instances.length;
    json(res, 200, { predictions: model.probs(pixels, instances.length).map((p) => ({ probabilities: [...p] })) });
  });
});
afterAll(async () => {
  await flat?.close();
  await png?.close();
});

function targetFile(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, name.endsWith('.json') ? JSON.stringify(content) : stringify(content));
  return file;
}

describe('http target', () => {
  it('a flat list in 0..255 with a label path: labels as the model gives them, counted as the server counts, resumed for free', async () => {
    const file = targetFile('flat.yaml', {
      url: '/v1/classify', // under --victim
      headers: { 'X-Api-Key': '${TL_TEST_API_KEY}' },
      body: { inputs: '$images' },
      images: { encoding: 'flat', scale: 'byte' },
      answer: { labels: '$.results[*].label' },
      inputShape: SHAPE,
      classes: CLASSES,
      maxBatch: 4,
    });
    process.env.TL_TEST_API_KEY = KEY;
    const run = join(dir, 'run-flat');
    const x = images(10, 5);
    const o1 = await createTargetOracle({ url: flat.url, target: { target: 'http', targetFile: file }, store: fileRunStore(run) });
    expect(await o1.info()).toMatchObject({ inputShape: SHAPE, classes: CLASSES, maxBatch: 4, output: 'label' });
    expect([...(await o1.label(x, 10, 'attack'))]).toEqual(model.labels(x, 10));
    expect(flat.log.images).toBe(10);
    expect(flat.log.starts).toHaveLength(3); // batches of 4, 4, 2
    await o1.close();
    const o2 = await createTargetOracle({ url: flat.url, target: { target: 'http', targetFile: file }, store: fileRunStore(run) });
    await o2.label(x, 10, 'measurement');
    expect(o2.counts()).toEqual({ attack: 0, measurement: 0, cached: 10 });
    expect(flat.log.images).toBe(10);
    await o2.close();

    delete process.env.TL_TEST_API_KEY;
    await expect(createTargetOracle({ url: flat.url, target: { target: 'http', targetFile: file } })).rejects.toThrow(/flat\.yaml: headers\.X-Api-Key uses \$\{TL_TEST_API_KEY\}, but the environment variable TL_TEST_API_KEY is not set/);
    process.env.TL_TEST_API_KEY = 'wrong';
    const o3 = await createTargetOracle({ url: flat.url, target: { target: 'http', targetFile: file } });
    await expect(o3.label(x, 1, 'attack')).rejects.toThrow(/http target refused POST .*\/v1\/classify \(HTTP 403\); it sent the header X-Api-Key \(from the headers of .*flat\.yaml\)/);
    await o3.close();
    delete process.env.TL_TEST_API_KEY;
  });

  it('base64 PNG in an item template with a score path and a probe: the argmax of the scores, kept in a scores campaign', async () => {
    const file = targetFile('png.json', {
      url: `${png.url}/v1/models/tiny:classify`,
      method: 'PUT',
      body: { instances: '$images' },
      images: { encoding: 'png-base64', item: { b64: '$image' } },
      answer: { scores: '$.predictions[*].probabilities' },
      probe: { url: `${png.url}/v1/models/tiny`, inputShape: '$.model.input.shape', classes: '$.model.classes' },
      maxBatch: 3,
    });
    const x = images(7, 6);
    const o = await createTargetOracle({ url: 'http://127.0.0.1:1', target: { target: 'http', targetFile: file }, threat: 'scores' });
    expect(await o.info()).toMatchObject({ inputShape: SHAPE, classes: CLASSES, maxBatch: 3, output: 'scores' });
    expect([...(await o.label(x, 7, 'attack'))]).toEqual(model.labels(x, 7));
    expect(png.log.images).toBe(7);
    expect(o.counts().attack).toBe(7);
    await o.close();
  });

  it('a wrong answer path is an error naming the path, the target and its file', async () => {
    const file = targetFile('wrong-path.yaml', {
      url: `${png.url}/v1/models/tiny:classify`,
      method: 'PUT',
      body: { instances: '$images' },
      images: { encoding: 'png-base64', item: { b64: '$image' } },
      answer: { scores: '$.outputs[*]' },
      inputShape: SHAPE,
      classes: CLASSES,
    });
    const o = await createTargetOracle({ url: 'http://127.0.0.1:1', target: { target: 'http', targetFile: file } });
    await expect(o.label(images(1, 7), 1, 'attack')).rejects.toThrow(/http target at .*tiny:classify \(.*wrong-path\.yaml\): the answer has no score lists at \$\.outputs\[\*\]/);
    expect(o.counts().attack).toBe(0); // nothing cached: a resumed run with the path fixed asks again
    await o.close();
  });
});
