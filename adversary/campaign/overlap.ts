import type { Labeler } from '../../shared/labeler.js';
import { labelImages, type Model } from '../../shared/model/model.js';

/**
 * Local work done while the victim answers. The victim is its own process: while it labels a batch
 * the adversary would otherwise wait, and while the adversary computes the victim would. The campaign
 * asks the victim exactly what, and in exactly the order, it asked before; only local work that does
 * not depend on the answer (the next ε's images, the substitute's labels of the same probes, a search
 * on the substitute) runs in the wait. The figures are the same; the wall time is shorter.
 */

/** One turn of the event loop: a call just made has its request on the wire (and an answer in can be read). */
export const nextTurn = (): Promise<void> => new Promise((done) => setImmediate(done));

/** Ask now; the answer (or the failure) is read later. A labeller that answers at once is asked at once too. */
export function askNow(label: Labeler, images: Float32Array, count: number): Promise<Int32Array> {
  const asked = (async () => label(images, count))();
  // Read later by the caller; until then a failure must not surface as an unhandled rejection.
  asked.catch(() => undefined);
  return asked;
}

/**
 * A substitute's labels that give the event loop a turn before each batch, so that a search on the
 * substitute run beside one on the victim lets the victim's answers in between its batches instead of
 * holding the thread until it is done.
 */
export function turnTakingLabeler(model: Model): Labeler {
  return async (images, count) => {
    await nextTurn();
    return labelImages(model, images, count);
  };
}

/**
 * A search on the victim while one on the substitute (already started) runs beside it: the victim's
 * result; on the victim's failure, the failure once the substitute's search has stopped too, so that
 * nothing runs on after the caller has given up. The caller awaits the substitute's result itself.
 */
export async function besideSubstitute<V>(onVictim: () => Promise<V>, onSubstitute: Promise<unknown>): Promise<V> {
  onSubstitute.catch(() => undefined);
  try {
    return await onVictim();
  } catch (e) {
    await onSubstitute.catch(() => undefined);
    throw e;
  }
}
