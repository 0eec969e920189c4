import { existsSync, statSync } from 'node:fs';
import { TransferlabError } from '../errors.js';
import { loadLayersFolder, type LayersFolder } from './layers-folder.js';

/**
 * The model a white-box attacker differentiates: a TF.js layers folder (the project's own or a
 * Keras model converted by tensorflowjs_converter), its softmax last layer stripped so gradients
 * are those of the logits. ONNX models are refused with the reason: ONNX Runtime runs models
 * forwards only and has no gradients to give.
 */
export async function loadWhiteboxModel(path: string): Promise<LayersFolder> {
  if (/\.onnx$/i.test(path) && existsSync(path) && statSync(path).isFile()) {
    throw new TransferlabError(
      'whitebox_unsupported',
      `${path} is an ONNX model: ONNX Runtime cannot differentiate it, so there is no white-box baseline for it. ` +
        'Attack it black-box over HTTP (npm run victim -- --model ' + path + ', then npm run adversary -- run), ' +
        'or give the same network as a TF.js layers folder (e.g. a Keras model converted with tensorflowjs_converter --input_format keras)',
    );
  }
  if (!existsSync(path)) throw new TransferlabError('model_missing', `no model at ${path}`, 404);
  return loadLayersFolder(path);
}
