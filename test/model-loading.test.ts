import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveKerasLayout } from '../scripts/keras-layout.js';
import { encodeModel, floatTensor, layersToOnnx, valueInfo } from '../scripts/onnx-export.js';
import { initBackend } from '../shared/engine/backend.js';
import { saveModel } from '../shared/model/model-io.js';
import { loadWhiteboxModel } from '../shared/model/whitebox-model.js';
import { openServedModel, readClassNames } from '../victim/model/served-model.js';

/**
 * Model loading in-process: every unservable model a user may bring is refused when it loads,
 * with a message naming what is wrong and what is supported; a softmax last layer is stripped
 * for gradients and only for gradients. (test/user-models.test.ts serves models over HTTP.)
 */
let dir: string;
const glorot = (seed: number) => tf.initializers.glorotUniform({ seed });

function small(last: 'dense-softmax' | 'softmax-layer' | 'activation-softmax' | 'logits', inputShape = [6, 6, 1]): tf.Sequential {
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({ inputShape, filters: 3, kernelSize: 3, activation: 'relu', kernelInitializer: glorot(1) }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 4, activation: last === 'dense-softmax' ? 'softmax' : 'linear', kernelInitializer: glorot(2), biasInitializer: 'ones' }),
  ];
  if (last === 'softmax-layer') layers.push(tf.layers.softmax());
  if (last === 'activation-softmax') layers.push(tf.layers.activation({ activation: 'softmax' }));
  return tf.sequential({ layers });
}

async function keras(name: string, model: tf.LayersModel, shardBytes = 100): Promise<string> {
  const path = join(dir, name);
  await saveKerasLayout(model, path, { shardBytes });
  return path;
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message };
  }
  throw new Error('expected the model to be refused');
}

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-model-loading-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('TF.js layers folders', () => {
  it('strips a softmax last layer for gradients, in each of its three spellings, and labels as the model does', async () => {
    const x = tf.randomUniform([8, 6, 6, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
    for (const last of ['dense-softmax', 'softmax-layer', 'activation-softmax'] as const) {
      const model = small(last);
      const folder = await loadWhiteboxModel(await keras(`wb-${last}`, model));
      expect(folder.softmaxStripped).toBe(true);
      const probs = model.predict(x) as tf.Tensor2D;
      const logits = folder.logits.logits(x);
      // The logits are not probabilities, and their softmax is the model's own output.
      expect(Math.abs(logits.sum(1).dataSync()[0] - 1)).toBeGreaterThan(1e-3);
      expect(tf.max(tf.abs(tf.sub(tf.softmax(logits), probs))).dataSync()[0]).toBeLessThan(1e-5);
      expect(Array.from(logits.argMax(1).dataSync())).toEqual(Array.from(probs.argMax(1).dataSync()));
      // The gradient flows through the logits, not a saturated softmax.
      const g = tf.grad((v: tf.Tensor) => folder.logits.logits(v as tf.Tensor4D).slice([0, 0], [-1, 1]).sum())(x);
      expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
      folder.dispose();
      model.dispose();
    }
    const plain = await loadWhiteboxModel(await keras('wb-logits', small('logits')));
    expect(plain.softmaxStripped).toBe(false);
    plain.dispose();
  });

  it('reads the project\'s own folders and checks their weights against metadata.json', async () => {
    const path = join(dir, 'own');
    await saveModel(small('logits'), path, { arch: 'tiny', dataset: 'mnist' });
    const served = await openServedModel(path);
    expect(served.format).toBe('transferlab');
    expect(served.info).toMatchObject({ dataset: 'mnist', inputShape: [6, 6, 1], classes: 4 });
    await served.close();
    // A dataset recorded as a summary gives /v1/info its name and class names.
    const named = join(dir, 'own-named');
    const summary = { name: 'tiny-shapes', classNames: ['a', 'b', 'c', 'd'] };
    await saveModel(small('logits'), named, { arch: 'tiny', dataset: summary as unknown as string });
    const withNames = await openServedModel(named);
    expect(withNames.info).toMatchObject({ dataset: 'tiny-shapes', classNames: ['a', 'b', 'c', 'd'] });
    await withNames.close();
    const weights = readFileSync(join(path, 'weights.bin'));
    weights[0] ^= 1;
    writeFileSync(join(path, 'weights.bin'), weights);
    expect((await refusal(openServedModel(path))).code).toBe('model_tampered');
  });

  it('refuses what it cannot serve, naming the problem', async () => {
    const flat = tf.sequential({ layers: [tf.layers.dense({ inputShape: [36], units: 4 })] });
    expect((await refusal(openServedModel(await keras('flat', flat)))).message).toMatch(/input of shape \[null, 36\], not images/);
    const twoInputs = (() => {
      const a = tf.input({ shape: [6, 6, 1] });
      const b = tf.input({ shape: [6, 6, 1] });
      const out = tf.layers.dense({ units: 3 }).apply(tf.layers.flatten().apply(tf.layers.add().apply([a, b]))) as tf.SymbolicTensor;
      return tf.model({ inputs: [a, b], outputs: out });
    })();
    expect((await refusal(openServedModel(await keras('two-inputs', twoInputs)))).message).toMatch(/has 2 inputs/);
    const dynamic = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [null, null, 1] as unknown as number[], filters: 4, kernelSize: 3 }), tf.layers.globalAveragePooling2d({})] });
    expect((await refusal(openServedModel(await keras('dynamic', dynamic)))).message).toMatch(/dynamic image size/);

    const missing = await keras('missing-shard', small('logits'));
    const shard = (JSON.parse(readFileSync(join(missing, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] }).weightsManifest[0].paths[1];
    rmSync(join(missing, shard));
    expect((await refusal(openServedModel(missing))).message).toContain(`names the weight file ${shard}, which is not in`);
    const escape = await keras('escape', small('logits'), 1e6);
    const json = JSON.parse(readFileSync(join(escape, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
    json.weightsManifest[0].paths = ['../own/weights.bin'];
    writeFileSync(join(escape, 'model.json'), JSON.stringify(json));
    expect((await refusal(openServedModel(escape))).message).toMatch(/outside/);
    const graph = join(dir, 'graph');
    mkdirSync(graph);
    writeFileSync(join(graph, 'model.json'), JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }));
    expect((await refusal(openServedModel(graph))).message).toMatch(/graph model.*--input_format keras/);
    writeFileSync(join(dir, 'model.h5'), 'HDF');
    expect((await refusal(openServedModel(join(dir, 'model.h5')))).message).toMatch(/not an \.onnx model/);
    expect((await refusal(openServedModel(await keras('layout', small('logits')), { layout: 'nchw' }))).message).toMatch(/--layout applies to ONNX/);
  });

  it('reads class names one per line or as JSON, and refuses a count that does not match', () => {
    writeFileSync(join(dir, 'c.txt'), 'a\nb\n\nc\n');
    expect(readClassNames(join(dir, 'c.txt'), 3)).toEqual(['a', 'b', 'c']);
    writeFileSync(join(dir, 'c.json'), '["x", "y"]');
    expect(readClassNames(join(dir, 'c.json'), 2)).toEqual(['x', 'y']);
    expect(() => readClassNames(join(dir, 'c.txt'), 4)).toThrow(/names 3 classes but the model has 4/);
  });
});

describe('ONNX files', () => {
  const relu = (input: string, output: string) => ({ opType: 'Relu', input: [input], output: [output] });

  it('takes the layout from the input metadata, or from --layout when it is ambiguous', async () => {
    const model = small('dense-softmax', [6, 6, 3]);
    const nhwc = join(dir, 'nhwc.onnx');
    writeFileSync(nhwc, layersToOnnx(model, { layout: 'nhwc' }));
    const served = await openServedModel(nhwc);
    expect(served.info).toMatchObject({ inputShape: [6, 6, 3], classes: 4 });
    expect(served.describe).toMatch(/NHWC \(from the model\)/);
    const x = tf.randomUniform([5, 6, 6, 3], 0, 1, 'float32', 9);
    expect(Array.from(await served.label(x.dataSync() as Float32Array, 5))).toEqual(Array.from((model.predict(x) as tf.Tensor).argMax(1).dataSync()));
    await served.close();
    // 3×4×3: a channel count fits both ends.
    const ambiguous = join(dir, 'ambiguous.onnx');
    writeFileSync(ambiguous, layersToOnnx(small('logits', [4, 3, 3])));
    expect((await refusal(openServedModel(ambiguous))).message).toMatch(/cannot tell whether the input.*--layout nchw/);
    const chosen = await openServedModel(ambiguous, { layout: 'nchw' });
    expect(chosen.info.inputShape).toEqual([4, 3, 3]);
    await chosen.close();
  });

  it('refuses an unknown operator, two inputs, a dynamic or non-image input and non-float pixels at load', async () => {
    const write = (name: string, bytes: Uint8Array) => {
      writeFileSync(join(dir, name), bytes);
      return join(dir, name);
    };
    const out = valueInfo('y', ['n', 4]);
    const custom = write('custom.onnx', encodeModel({
      nodes: [{ opType: 'FancyPool', domain: '', input: ['x'], output: ['y'] }],
      initializers: [],
      inputs: [valueInfo('x', ['n', 1, 6, 6])],
      outputs: [out],
    }));
    expect((await refusal(openServedModel(custom))).message).toMatch(/ONNX Runtime cannot load .*FancyPool/);
    const two = write('two.onnx', encodeModel({ nodes: [{ opType: 'Add', input: ['a', 'b'], output: ['y'] }], initializers: [], inputs: [valueInfo('a', ['n', 4]), valueInfo('b', ['n', 4])], outputs: [out] }));
    expect((await refusal(openServedModel(two))).message).toMatch(/has 2 inputs \(a, b\)/);
    const dynamic = write('dynamic.onnx', encodeModel({ nodes: [relu('x', 'y')], initializers: [], inputs: [valueInfo('x', ['n', 3, 'h', 'w'])], outputs: [valueInfo('y', ['n', 3, 'h', 'w'])] }));
    expect((await refusal(openServedModel(dynamic))).message).toMatch(/"h", "w"\]: a dynamic image size/);
    const vector = write('vector.onnx', encodeModel({
      nodes: [{ opType: 'Gemm', input: ['x', 'W'], output: ['y'] }],
      initializers: [floatTensor('W', [36, 4], new Float32Array(144))],
      inputs: [valueInfo('x', ['n', 36])],
      outputs: [out],
    }));
    expect((await refusal(openServedModel(vector))).message).toMatch(/shape \["n", 36\], not an image batch of rank 4/);
    const bytesIn = write('uint8.onnx', encodeModel({ nodes: [{ opType: 'Identity', input: ['x'], output: ['y'] }], initializers: [], inputs: [valueInfo('x', ['n', 1, 6, 6], 2)], outputs: [valueInfo('y', ['n', 1, 6, 6], 2)] }));
    expect((await refusal(openServedModel(bytesIn))).message).toMatch(/is uint8, not float32/);
    const notScores = write('not-scores.onnx', encodeModel({ nodes: [relu('x', 'y')], initializers: [], inputs: [valueInfo('x', ['n', 1, 6, 6])], outputs: [valueInfo('y', ['n', 1, 6, 6])] }));
    expect((await refusal(openServedModel(notScores))).message).toMatch(/not \[1, classes\]/);
    expect((await refusal(loadWhiteboxModel(custom))).message).toMatch(/ONNX Runtime cannot differentiate/);
  });
});
