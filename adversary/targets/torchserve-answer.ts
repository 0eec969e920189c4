/**
 * What a TorchServe handler answers for one image, read as a label (and the scores it gave). The
 * default image_classifier handler returns its top-5 as `{"name or index": probability, …}` (names
 * when the model archive has an index_to_name.json); custom handlers often return the list of every
 * class's probability, a bare label (the MNIST example returns the digit), a `{class, probability}`
 * object or a list of those; a handler that batches may wrap its one answer in a list. Names are
 * mapped to indices through the class names the run knows (the model's, or --classes' order).
 */
import { TransferlabError } from '../../shared/errors.js';

export interface ClassSpace {
  classes: number;
  /** Name of each class index, when the endpoint answers with names. */
  classNames?: readonly string[];
}

export interface OneAnswer {
  label: number;
  /** The probabilities the answer gave, NaN for a class it did not name; absent for a bare label. */
  scores?: Float32Array;
}

const bad = (message: string) => new TransferlabError('victim_bad_response', message, 502);
const shown = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
};

/** The index of a class the answer names by index or by name. */
export function classIndex(key: unknown, space: ClassSpace): number {
  if (typeof key === 'number') {
    if (Number.isInteger(key) && key >= 0 && key < space.classes) return key;
    throw bad(`the answer names class ${key}, outside 0..${space.classes - 1}`);
  }
  if (typeof key !== 'string') throw bad(`the answer names a class as ${shown(key)}, neither an index nor a name`);
  const named = space.classNames?.indexOf(key) ?? -1;
  if (named >= 0) return named;
  if (/^\d+$/.test(key)) return classIndex(Number(key), space);
  const known = space.classNames ? `the known names are ${space.classNames.slice(0, 12).join(', ')}${space.classNames.length > 12 ? ', …' : ''}` : 'no class names are known (give them in the target\'s classes)';
  throw bad(`the answer names class "${key}", which is not a class index and not a known class name; ${known}`);
}

/** Top-1 of scores given per class (NaN = not given); ties go to the lower index, like argmax everywhere here. */
export function argmax(scores: ArrayLike<number>): number {
  let best = -1;
  for (let i = 0; i < scores.length; i++) if (!Number.isNaN(scores[i]) && (best < 0 || scores[i] > scores[best])) best = i;
  if (best < 0) throw bad('the answer gave no score');
  return best;
}

function fromPairs(pairs: [unknown, unknown][], space: ClassSpace): OneAnswer {
  if (pairs.length === 0) throw bad('the answer names no class');
  const scores = new Float32Array(space.classes).fill(Number.NaN);
  for (const [key, p] of pairs) {
    if (typeof p !== 'number' || !Number.isFinite(p)) throw bad(`the answer gives class ${shown(key)} the score ${shown(p)}, not a number`);
    scores[classIndex(key, space)] = p;
  }
  return { label: argmax(scores), scores };
}

const CLASS_KEYS = ['class', 'className', 'class_name', 'label', 'name', 'index'];
const PROB_KEYS = ['probability', 'prob', 'score', 'confidence'];

/** `{class: …, probability: …}` (and its spellings): the class and its score, or undefined for another object. */
function classProbObject(o: Record<string, unknown>): [unknown, unknown] | undefined {
  const c = CLASS_KEYS.find((k) => k in o);
  const p = PROB_KEYS.find((k) => k in o);
  return c !== undefined && p !== undefined && Object.keys(o).length === 2 ? [o[c], o[p]] : undefined;
}

/** One image's answer, in any of the shapes TorchServe handlers give. */
export function readTorchServeAnswer(json: unknown, space: ClassSpace): OneAnswer {
  if (typeof json === 'number' || typeof json === 'string') return { label: classIndex(json, space) };
  if (Array.isArray(json)) {
    if (json.length === 1 && typeof json[0] !== 'number') return readTorchServeAnswer(json[0], space);
    if (json.length > 0 && json.every((v) => typeof v === 'number')) {
      if (json.length !== space.classes) throw bad(`the answer is a list of ${json.length} scores for a model of ${space.classes} classes`);
      const scores = Float32Array.from(json as number[]);
      return { label: argmax(scores), scores };
    }
    const pairs = json.map((o) => (o !== null && typeof o === 'object' && !Array.isArray(o) ? classProbObject(o as Record<string, unknown>) : undefined));
    if (pairs.length > 0 && pairs.every((p) => p !== undefined)) return fromPairs(pairs as [unknown, unknown][], space);
    throw bad(`the answer ${shown(json)} is a list but neither of scores nor of {class, probability} objects`);
  }
  if (json !== null && typeof json === 'object') {
    const o = json as Record<string, unknown>;
    const single = classProbObject(o);
    if (single) return fromPairs([single], space);
    return fromPairs(Object.entries(o), space);
  }
  throw bad(`the answer ${shown(json)} is not a label, a list of scores or a {class: probability} object`);
}
