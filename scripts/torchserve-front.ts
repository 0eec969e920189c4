/**
 * A TorchServe-shaped front over a model folder, standing in for a TorchServe deployment in the
 * measurements of docs/results/targets.md (no TorchServe, Python or PyTorch here). It is not
 * TorchServe and not a test double: it answers the routes the `torchserve` target uses the way
 * TorchServe's default image classifier handler does — `GET /ping`, and `POST /predictions/{name}`
 * with one PNG image a request and `Authorization: Bearer <inference key>`, answered with the top-5
 * `{"class": probability}` object — so the target's PNG encoding, one-image requests and answer
 * parsing are measured against the README's victim model.
 *
 *   npx tsx scripts/torchserve-front.ts --model models/victim --model-name mnist --token "$TS_INFERENCE_KEY" --port 8080
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PNG } from 'pngjs';
import yargs from 'yargs';
import { isMain, runMain } from '../shared/cli.js';
import { initBackend } from '../shared/engine/backend.js';
import { openServedModel } from '../victim/model/served-model.js';

const TOP_K = 5;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim', describe: 'model folder (as the victim\'s --model)' },
      'model-name': { type: 'string', default: 'mnist', describe: 'the name in /predictions/{name}' },
      token: { type: 'string', describe: 'inference key required as Authorization: Bearer (none: open)' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'number', default: 8080 },
    })
    .strict()
    .parseAsync();
  await initBackend();
  const model = await openServedModel(a.model);
  const [h, w, c] = model.info.inputShape;
  const route = `/predictions/${a['model-name']}`;
  let images = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        if (req.method === 'GET' && req.url === '/ping') return send(res, 200, { status: 'Healthy' });
        if (req.method !== 'POST' || (req.url !== route && !req.url?.startsWith(`${route}/`))) return send(res, 404, { code: 404, type: 'ModelNotFoundException', message: `Model not found: ${req.url}` });
        if (a.token !== undefined && req.headers.authorization !== `Bearer ${a.token}`) return send(res, 401, { code: 401, type: 'InvalidKeyException', message: 'Token Authorization failed' });
        let png: PNG;
        try {
          png = PNG.sync.read(Buffer.concat(chunks));
        } catch (e) {
          return send(res, 400, { code: 400, type: 'BadRequest', message: `not a PNG image: ${(e as Error).message}` });
        }
        if (png.width !== w || png.height !== h) return send(res, 400, { code: 400, type: 'BadRequest', message: `image is ${png.width}×${png.height}, the model takes ${w}×${h}` });
        // pngjs decodes to RGBA: one channel is the red byte, three are RGB.
        const x = new Float32Array(h * w * c);
        for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) x[p * c + k] = png.data[p * 4 + k] / 255;
        const { probabilities } = await model.predict(x, 1);
        images++;
        const p = Array.from(probabilities.subarray(0, model.info.classes));
        const top = [...p.keys()].sort((i, j) => p[j] - p[i] || i - j).slice(0, TOP_K);
        send(res, 200, Object.fromEntries(top.map((k) => [String(k), p[k]])));
      })().catch((e: unknown) => send(res, 500, { code: 500, type: 'InternalServerException', message: (e as Error).message }));
    });
  });
  await new Promise<void>((resolve) => server.listen(a.port, a.host, resolve));
  const { port } = server.address() as AddressInfo;
  console.log(`TorchServe-shaped front on http://${a.host}:${port}${route} (${model.describe})`);
  const stop = () => { console.log(`${images} images labelled`); server.close(); void model.close(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return new Promise<number>((resolve) => server.on('close', () => resolve(0)));
}

if (isMain(import.meta.url)) runMain(main);
