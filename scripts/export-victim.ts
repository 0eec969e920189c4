/**
 * Exports a transferlab model folder as the two kinds of model a user brings:
 * - `<out>/model.onnx`: ONNX (opset 13) as torch.onnx.export writes a CNN: NCHW input "input" with a
 *   dynamic batch, output "output" = logits;
 * - `<out>/keras-web-model/`: the file layout tensorflowjs_converter --input_format keras writes
 *   (model.json + group1-shard*.bin, no metadata.json), the last layer ending in softmax as Keras
 *   classifiers usually do.
 *
 *   npx tsx scripts/export-victim.ts --model models/victim --out models/exported
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { initBackend } from '../shared/engine/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { loadModel } from '../shared/model/model-io.js';
import { saveKerasLayout } from './keras-layout.js';
import { layersToOnnx } from './onnx-export.js';

export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName('npx tsx scripts/export-victim.ts')
    .options({
      model: { type: 'string', default: 'models/victim', describe: 'transferlab model folder to export' },
      out: { type: 'string', default: 'models/exported', describe: 'folder for model.onnx and keras-web-model/' },
      'shard-bytes': { type: 'number', default: 4 * 1024 * 1024, describe: "bytes per weight shard of the Keras-layout folder (the converter's default: 4 MiB)" },
    })
    .strict()
    .help()
    .parseAsync();
  await initBackend();
  const { model, metadata } = await loadModel(args.model);
  mkdirSync(args.out, { recursive: true });
  const onnxPath = join(args.out, 'model.onnx');
  writeFileSync(onnxPath, layersToOnnx(model));
  const kerasDir = join(args.out, 'keras-web-model');
  const shards = await saveKerasLayout(model, kerasDir, { shardBytes: args['shard-bytes'], softmax: true });
  console.log(`${args.model} (${metadata.arch}) → ${onnxPath} (NCHW, logits) and ${kerasDir} (${shards.join(', ')}, softmax last layer)`);
  model.dispose();
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
