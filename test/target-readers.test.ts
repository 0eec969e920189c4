/** The pure parts of the torchserve, http and module targets: PNG bodies, answer shapes, paths, target files, limits. */
import { describe, expect, it } from 'vitest';
import { decodePng, encodePng } from '../adversary/targets/png.js';
import { readTorchServeAnswer } from '../adversary/targets/torchserve-answer.js';
import { parseJsonPath, readJsonPath } from '../adversary/targets/json-path.js';
import { resolveHttpTarget } from '../adversary/targets/http-target-file.js';
import { batchBody, readBatchAnswer, readProbe } from '../adversary/targets/http-target-body.js';
import { readModuleAnswer } from '../adversary/targets/module-target.js';
import { eachLimited, RequestPacer } from '../adversary/oracle/limits.js';
import { withDatasetShape } from '../adversary/targets/oracle.js';

const messageOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};
const digits = { classes: 10 };
const named = { classes: 3, classNames: ['cat', 'dog', 'tabby'] };

describe('PNG bodies', () => {
  it('round-trip grayscale and RGB bytes exactly, and refuse 2 channels', () => {
    for (const c of [1, 3] as const) {
      const pixels = Uint8Array.from({ length: 5 * 4 * c }, (_, i) => (i * 37) % 256);
      const png = encodePng(pixels, 5, 4, c);
      expect([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join('')).toBe('PNG');
      expect(png[25]).toBe(c === 1 ? 0 : 2); // IHDR colour type: grayscale or RGB, no alpha
      const back = decodePng(png, c);
      expect([back.height, back.width]).toEqual([5, 4]);
      expect([...back.pixels]).toEqual([...pixels]);
    }
    expect(messageOf(() => encodePng(new Uint8Array(8), 2, 2, 2))).toMatch(/1 \(grayscale\) or 3 \(RGB\) channels/);
  });
});

describe("TorchServe's answers", () => {
  it('reads top-k objects by index or name, score lists, bare labels and {class, probability}', () => {
    const topk = readTorchServeAnswer({ '3': 0.7, '8': 0.2, '5': 0.1 }, digits);
    expect(topk.label).toBe(3);
    expect(topk.scores?.[8]).toBeCloseTo(0.2);
    expect(Number.isNaN(topk.scores?.[0])).toBe(true);
    expect(readTorchServeAnswer({ dog: 0.1, tabby: 0.6, cat: 0.3 }, named).label).toBe(2);
    expect(readTorchServeAnswer([{ dog: 0.9, cat: 0.1 }], named).label).toBe(1); // a batching handler's list of one
    expect(readTorchServeAnswer([0, 0.1, 0.05, 0.8, 0, 0, 0, 0, 0.05, 0], digits).label).toBe(3);
    expect(readTorchServeAnswer(7, digits)).toEqual({ label: 7 });
    expect(readTorchServeAnswer('dog', named)).toEqual({ label: 1 });
    expect(readTorchServeAnswer({ class: 'cat', probability: 0.4 }, named).label).toBe(0);
    expect(readTorchServeAnswer([{ className: 'dog', probability: 0.3 }, { className: 'cat', probability: 0.6 }], named).label).toBe(0);
  });

  it('names what is wrong: an unknown name, a label out of range, a short score list', () => {
    expect(messageOf(() => readTorchServeAnswer({ lion: 0.9 }, named))).toMatch(/names class "lion".*known names are cat, dog, tabby/);
    expect(messageOf(() => readTorchServeAnswer({ tabby: 0.9 }, digits))).toMatch(/no class names are known/);
    expect(messageOf(() => readTorchServeAnswer(12, digits))).toMatch(/class 12, outside 0\.\.9/);
    expect(messageOf(() => readTorchServeAnswer([0.5, 0.5], digits))).toMatch(/list of 2 scores for a model of 10 classes/);
    expect(messageOf(() => readTorchServeAnswer(null, digits))).toMatch(/not a label/);
  });
});

describe('JSON paths', () => {
  const doc = { predictions: [{ label: 4, p: [0.1, 0.9] }, { label: 2, p: [0.8, 0.2] }], 'odd key': { x: 1 } };
  it('reads keys, indices, wildcards and quoted keys', () => {
    expect(readJsonPath(doc, '$.predictions[*].label')).toEqual([4, 2]);
    expect(readJsonPath(doc, '$.predictions[-1].p[0]')).toEqual([0.8]);
    expect(readJsonPath(doc, "$['odd key'].x")).toEqual([1]);
    expect(readJsonPath(doc, '$.predictions.*.label')).toEqual([4, 2]);
    expect(readJsonPath(doc, '$.nothing[*]')).toEqual([]);
    expect(readJsonPath([1, 2], '$')).toEqual([[1, 2]]);
  });
  it('refuses what it does not know, with the position', () => {
    expect(messageOf(() => parseJsonPath('predictions'))).toMatch(/must start with \$/);
    expect(messageOf(() => parseJsonPath('$.a[?(@.x)]'))).toMatch(/expected \[N\].*at character 4/);
  });
});

const flatTarget = {
  url: 'http://api.test/classify',
  headers: { Authorization: 'Bearer ${TEST_TOKEN}' },
  body: { model: 'm', instances: '$images' },
  images: { encoding: 'flat', scale: 'byte' },
  answer: { labels: '$.results[*].label' },
  inputShape: [2, 2, 1],
  classes: 10,
  maxBatch: 4,
};

describe('http target files', () => {
  it('substitutes ${ENV} secrets and names a missing variable and where it is used', () => {
    const spec = resolveHttpTarget(flatTarget, 'api.yaml', { TEST_TOKEN: 's3cret' });
    expect(spec.headers.Authorization).toBe('Bearer s3cret');
    expect(messageOf(() => resolveHttpTarget(flatTarget, 'api.yaml', {}))).toBe('api.yaml: headers.Authorization uses ${TEST_TOKEN}, but the environment variable TEST_TOKEN is not set');
  });

  it('refuses a typo with its path, a body without $images and two answer paths', () => {
    const typo = messageOf(() => resolveHttpTarget({ ...flatTarget, images: { encodng: 'flat' } }, 'api.yaml', { TEST_TOKEN: 'x' }));
    expect(typo).toMatch(/images\.encodng: unknown setting; did you mean encoding\?/);
    expect(messageOf(() => resolveHttpTarget({ ...flatTarget, body: { instances: [] } }, 'a.yaml', { TEST_TOKEN: 'x' }))).toMatch(/body: must hold the string "\$images" exactly once/);
    expect(messageOf(() => resolveHttpTarget({ ...flatTarget, answer: { labels: '$.a', scores: '$.b' } }, 'a.yaml', { TEST_TOKEN: 'x' }))).toMatch(/answer: give exactly one of labels and scores/);
    expect(messageOf(() => resolveHttpTarget({ ...flatTarget, answer: { labels: 'results' } }, 'a.yaml', { TEST_TOKEN: 'x' }))).toMatch(/answer\.labels: JSON path "results" must start with \$/);
  });

  it('writes a batch flat in 0..255, nested CHW in [0,1], or as base64 PNG entries of an item template', () => {
    const spec = resolveHttpTarget(flatTarget, 'a.yaml', { TEST_TOKEN: 'x' });
    const bytes = Uint8Array.from([0, 51, 102, 255, 1, 2, 3, 4]);
    expect(JSON.parse(batchBody(spec, bytes, 2, [2, 2, 1]))).toEqual({ model: 'm', instances: [[0, 51, 102, 255], [1, 2, 3, 4]] });
    const chw = { ...spec, images: { encoding: 'nested' as const, layout: 'chw' as const, scale: 'unit' as const } };
    const rgb = Uint8Array.from([0, 255, 51, 102, 0, 255]); // one 1×2 RGB image
    expect(JSON.parse(batchBody(chw, rgb, 1, [1, 2, 3])).instances).toEqual([[[[0, 0.4]], [[1, 0]], [[0.2, 1]]]]);
    const png = { ...spec, images: { encoding: 'png-base64' as const, layout: 'hwc' as const, scale: 'unit' as const, item: { b64: '$image' } } };
    const entry = JSON.parse(batchBody(png, bytes, 2, [2, 2, 1])).instances[1] as { b64: string };
    expect([...decodePng(Buffer.from(entry.b64, 'base64'), 1).pixels]).toEqual([1, 2, 3, 4]);
  });

  it('reads labels and scores at their paths, and says when the count or the path is wrong', () => {
    const spec = resolveHttpTarget(flatTarget, 'a.yaml', { TEST_TOKEN: 'x' });
    expect(readBatchAnswer(spec, { results: [{ label: 3 }, { label: '7' }] }, 2, digits).map((a) => a.label)).toEqual([3, 7]);
    expect(messageOf(() => readBatchAnswer(spec, { results: [{ label: 3 }] }, 2, digits))).toMatch(/1 labels at \$\.results\[\*\]\.label for 2 images/);
    expect(messageOf(() => readBatchAnswer(spec, { output: [] }, 2, digits))).toMatch(/no labels at \$\.results/);
    const scores = { ...spec, answer: { scores: '$.scores' } };
    const read = readBatchAnswer(scores, { scores: [[0.1, 0.7, 0.2], { cat: 0.1, tabby: 0.9 }] }, 2, named);
    expect(read.map((a) => a.label)).toEqual([1, 2]);
    expect(messageOf(() => readBatchAnswer(scores, { scores: [1, 2] }, 2, named))).toMatch(/holds 1, not a list of scores/);
    expect(readProbe({ inputShape: '$.shape', classes: '$.n' }, { shape: [28, 28, 1], n: 10 })).toEqual({ inputShape: [28, 28, 1], classes: 10 });
    expect(messageOf(() => readProbe({ inputShape: '$.shape' }, { shape: [28, 28] }))).toMatch(/not \[height, width, channels\]/);
  });
});

describe("a target module's answers", () => {
  it('takes labels, names, flat or nested scores, and refuses a wrong count', () => {
    expect(readModuleAnswer('m.ts', Int32Array.from([1, 2]), 2, digits).map((a) => a.label)).toEqual([1, 2]);
    expect(readModuleAnswer('m.ts', ['tabby', 'cat'], 2, named).map((a) => a.label)).toEqual([2, 0]);
    expect(readModuleAnswer('m.ts', Float32Array.from([0.1, 0.2, 0.7, 0.5, 0.3, 0.2]), 2, named).map((a) => a.label)).toEqual([2, 0]);
    expect(readModuleAnswer('m.ts', [[0.1, 0.8, 0.1]], 1, named)[0].label).toBe(1);
    expect(messageOf(() => readModuleAnswer('m.ts', [1, 2, 3], 2, named))).toMatch(/target module m\.ts: predict\(\) returned 3 values for 2 images: expected 2 labels or 2×3 scores/);
    expect(messageOf(() => readModuleAnswer('m.ts', [4, 1], 2, named))).toMatch(/m\.ts: predict\(\)'s answer: .*class 4, outside 0\.\.2/);
  });
});

describe('the request pacer', () => {
  it('holds concurrency and spaces starts by 1/rps', async () => {
    const pacer = new RequestPacer(2, 50);
    let inFlight = 0;
    let most = 0;
    const starts: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, () =>
        pacer.run(async () => {
          starts.push(performance.now());
          most = Math.max(most, ++inFlight);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
        }),
      ),
    );
    expect(most).toBeLessThanOrEqual(2);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(15); // paced 20 ms apart; the slack is the callbacks' own latency on a loaded machine
  });

  it('eachLimited stops starting work after a failure and throws the first error', async () => {
    const ran: number[] = [];
    await expect(
      eachLimited([0, 1, 2, 3, 4, 5], 2, async (i) => {
        ran.push(i);
        await new Promise((r) => setTimeout(r, 1));
        if (i === 1) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(ran.length).toBeLessThan(6);
  });
});

describe("the attacker's dataset as the model's description", () => {
  it('fills --input-shape and --classes for servers without metadata, and leaves the others and given values alone', () => {
    expect(withDatasetShape({ target: 'torchserve' }, 'mnist')).toMatchObject({ inputShape: '28,28,1', classes: 10 });
    expect(withDatasetShape({ target: 'torchserve', classNames: ['a', 'b'] }, 'mnist')).toEqual({ target: 'torchserve', classNames: ['a', 'b'], inputShape: '28,28,1' });
    expect(withDatasetShape({ target: 'torchserve', inputShape: '4,4,1', classes: 3 }, 'mnist')).toEqual({ target: 'torchserve', inputShape: '4,4,1', classes: 3 });
    expect(withDatasetShape({ target: 'oip' }, 'mnist')).toEqual({ target: 'oip' });
    expect(withDatasetShape({ target: 'torchserve' }, undefined)).toEqual({ target: 'torchserve' });
  });
});
