import { DEFAULT_DATASET, isBuiltinDataset, loadDataset, type Dataset } from '../../shared/datasets/index.js';
import { TransferlabError } from '../../shared/errors.js';
import type { VictimInfo } from '../oracle/oracle.js';

/**
 * The attacker's own images: the chosen dataset's test part (a built-in name or a folder), or the
 * victim's dataset when /v1/info names a built-in one, else MNIST. Its images must have the shape
 * the victim takes and its labels the victim's class count — checked before any query is sent.
 */
export function attackerDataset(spec: string | undefined, info: VictimInfo, log: (line: string) => void = () => {}): Dataset {
  const fromVictim = info.dataset !== null && isBuiltinDataset(info.dataset) ? info.dataset : undefined;
  const ds = loadDataset(spec ?? fromVictim ?? DEFAULT_DATASET);
  const want = info.inputShape.join('×');
  if (ds.shape.join('×') !== want || ds.classes !== info.classes) {
    throw new TransferlabError(
      'victim_mismatch',
      `the victim takes ${want} images in ${info.classes} classes${info.dataset ? ` (${info.dataset})` : ''}, but dataset ${ds.name} holds ` +
        `${ds.shape.join('×')} images in ${ds.classes} classes; choose a dataset of the victim's shape with --dataset NAME|PATH`,
    );
  }
  if (info.dataset && info.dataset !== ds.name) {
    log(`note: the victim reports dataset ${info.dataset}; the seed and evaluation images come from ${ds.name}`);
  }
  return ds;
}
