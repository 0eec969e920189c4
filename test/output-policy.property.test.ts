import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTransferlabError } from '../shared/errors.js';
import { API_ERRORS } from '../shared/protocol/index.js';
import { policyRows, predictField, rankClasses, type OutputSettings } from '../victim/http/outputs.js';
import { parseInferRequest } from '../victim/http/protocols/oip.js';
import { parsePredictRequest } from '../victim/http/protocols/tfserving.js';
import type { ServingModel } from '../victim/http/protocols/serving.js';

/**
 * Properties of the output policy and of the protocol parsers, on random inputs (seeded, bounded):
 * a policy's rows hold exactly what it allows — one 1 at the label under `label`, at most K non-zero
 * probabilities (the label's among them) under `topk:K`, rounded values under `round` — and no body
 * a client can send makes the OIP or TF Serving parser fail with anything but a clear 4xx.
 */
const CLASSES = 5;
const SEED = { seed: 20261206, numRuns: 200 };

/** A batch of probability rows and the labels (argmax) a model would answer with them. */
const batch = fc
  .array(fc.array(fc.float({ min: Math.fround(0.001), max: 1, noNaN: true }), { minLength: CLASSES, maxLength: CLASSES }), { minLength: 1, maxLength: 4 })
  .map((rows) => {
    const probabilities = Float32Array.from(rows.flatMap((r) => r.map((v) => v / r.reduce((a, b) => a + b, 0))));
    const labels = Int32Array.from(rows, (r) => r.indexOf(Math.max(...r)));
    return { probabilities, labels };
  });

const policy = fc.oneof(
  fc.constant<OutputSettings>({ policy: { kind: 'label' } }),
  fc.record({ policy: fc.integer({ min: 1, max: CLASSES + 1 }).map((k) => ({ kind: 'topk' as const, k })), round: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }) }),
  fc.record({ policy: fc.constant({ kind: 'scores' as const }), round: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }) }),
);

describe('what each policy lets out', () => {
  it('rows: one-hot under label, at most K non-zero under topk:K, everything under scores; rounded when asked', () => {
    fc.assert(
      fc.property(policy, batch, (o, { probabilities, labels }) => {
        const rows = policyRows(o, labels, CLASSES, o.policy.kind === 'label' ? undefined : probabilities);
        labels.forEach((label, i) => {
          const row = rows.slice(i * CLASSES, (i + 1) * CLASSES);
          const nonZero = row.filter((v) => v !== 0).length;
          if (o.policy.kind === 'label') expect(row).toEqual(Array.from({ length: CLASSES }, (_, k) => (k === label ? 1 : 0)));
          else if (o.policy.kind === 'topk') expect(nonZero).toBeLessThanOrEqual(o.policy.k);
          if (o.policy.kind !== 'label') {
            expect(row[label]).toBeGreaterThan(0); // the label is always among what a policy with probabilities answers
            row.forEach((v, k) => {
              if (v === 0) return;
              expect(Math.abs(v - probabilities[i * CLASSES + k])).toBeLessThanOrEqual(o.round !== undefined ? 0.5 * 10 ** -o.round + 1e-7 : 1e-6);
              if (o.round !== undefined) expect(Math.abs(v * 10 ** o.round - Math.round(v * 10 ** o.round))).toBeLessThan(1e-6);
            });
          }
        });
      }),
      SEED,
    );
  });

  it("/v1/predict's field agrees with the rows: top holds the label first and the same values", () => {
    fc.assert(
      fc.property(policy, batch, (o, { probabilities, labels }) => {
        if (o.policy.kind === 'label') return;
        const field = predictField(o, labels, probabilities);
        const rows = policyRows(o, labels, CLASSES, probabilities);
        if ('top' in field) {
          field.top.forEach((top, i) => {
            expect(top[0].class).toBe(labels[i]);
            expect(top).toHaveLength(Math.min(o.policy.kind === 'topk' ? o.policy.k : CLASSES, CLASSES));
            for (const { class: c, p } of top) expect(rows[i * CLASSES + c]).toBe(p);
          });
        } else field.scores.forEach((row, i) => expect(row).toEqual(rows.slice(i * CLASSES, (i + 1) * CLASSES)));
      }),
      SEED,
    );
  });

  it('ranks the label first even when a float tie puts another class level with it', () => {
    expect(rankClasses(2, Float32Array.from([0.4, 0.1, 0.4, 0.1]))).toEqual([2, 0, 1, 3]);
  });
});

const MODEL: ServingModel = { name: 'model', inputShape: [2, 2, 1], classes: CLASSES, maxBatch: 3, output: { policy: { kind: 'label' } } };

/** JSON-ish junk, and bodies close to valid ones with one part wrong. */
const junk = fc.jsonValue({ maxDepth: 4 });
const pixel = fc.oneof(fc.double({ min: -2, max: 300 }), fc.constant(0.5), fc.constant(255), fc.string({ maxLength: 3 }), fc.constant(null));
const tensor = fc.oneof(fc.array(pixel, { maxLength: 14 }), fc.array(fc.array(fc.array(fc.array(pixel, { maxLength: 2 }), { maxLength: 3 }), { maxLength: 3 }), { maxLength: 4 }), junk);
const oipBody = fc.oneof(
  junk,
  fc.record(
    {
      id: fc.oneof(fc.string(), junk),
      inputs: fc.oneof(
        fc.array(fc.record({ name: fc.oneof(fc.constant('images'), fc.string()), shape: fc.oneof(fc.array(fc.integer({ min: -1, max: 5 }), { maxLength: 5 }), junk), datatype: fc.constantFrom('FP32', 'UINT8', 'INT64', 'BYTES'), data: tensor }, { requiredKeys: [] }), { maxLength: 2 }),
        junk,
      ),
      outputs: fc.oneof(fc.array(fc.record({ name: fc.constantFrom('probabilities', 'x') })), junk),
    },
    { requiredKeys: [] },
  ),
);
const tfsBody = fc.oneof(
  junk,
  fc.record({ signature_name: fc.constantFrom('serving_default', 'other'), instances: fc.oneof(fc.array(tensor, { maxLength: 5 }), junk), inputs: fc.oneof(tensor, fc.record({ images: tensor }), junk) }, { requiredKeys: [] }),
);

/** A parser's verdict on one body: images of the right size, or a TransferlabError the contract or the protocols give a 4xx status. */
function checkVerdict(parse: () => { images: Float32Array; count: number }): void {
  try {
    const { images, count } = parse();
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(MODEL.maxBatch);
    expect(images).toHaveLength(count * 4);
    for (const v of images) expect(v >= 0 && v <= 1).toBe(true);
  } catch (e) {
    expect(isTransferlabError(e), String(e)).toBe(true);
    const err = e as { status: number; code: string; message: string };
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.status).toBeLessThan(500);
    expect(err.message.length).toBeGreaterThan(10);
    if (err.code in API_ERRORS) expect(API_ERRORS[err.code as keyof typeof API_ERRORS]).toBe(err.status);
  }
}

describe('no body breaks the protocol parsers', () => {
  it('OIP infer requests: images in [0, 1] of the served shape, or a clear 4xx', () => {
    fc.assert(fc.property(oipBody, (body) => checkVerdict(() => parseInferRequest(Buffer.from(JSON.stringify(body) ?? 'null'), MODEL))), SEED);
  });

  it('TF Serving predict requests: images in [0, 1] of the served shape, or a clear 4xx', () => {
    fc.assert(fc.property(tfsBody, (body) => checkVerdict(() => parsePredictRequest(Buffer.from(JSON.stringify(body) ?? 'null'), MODEL))), SEED);
  });

  it('reads UINT8 and FP32, flat and nested, as the same images', () => {
    const u8 = [0, 51, 102, 255];
    const flat = parseInferRequest(Buffer.from(JSON.stringify({ inputs: [{ name: 'images', shape: [1, 2, 2, 1], datatype: 'UINT8', data: u8 }] })), MODEL);
    const nested = parseInferRequest(Buffer.from(JSON.stringify({ inputs: [{ name: 'images', shape: [1, 2, 2, 1], datatype: 'FP32', data: [[[[0], [0.2]], [[0.4], [1]]]] }] })), MODEL);
    const rows = parsePredictRequest(Buffer.from(JSON.stringify({ instances: [[[0, 0.2], [0.4, 1]]] })), MODEL);
    expect(Array.from(flat.images)).toEqual(Array.from(nested.images));
    expect(Array.from(rows.images)).toEqual(Array.from(nested.images));
  });
});
