import * as tf from '@tensorflow/tfjs';
import { IMAGE_SIZE } from '../../shared/datasets/index.js';
import type { Labeler } from '../../shared/labeler.js';
import { labelImages, type Model } from '../../shared/model/model.js';

/**
 * Micro-batching: requests that arrive while the model is busy (or within the same event-loop turn)
 * are queued and run as ONE model call, and the labels are split back per request. Many small
 * requests then cost about what one large batch costs, instead of paying per-call overhead each.
 *
 * The model function is synchronous (TF.js cpu/wasm inference blocks anyway; a Labeler may answer at once), so while it runs,
 * new requests pile up in the socket buffers; the next flush, scheduled with setImmediate after the
 * I/O phase, picks all of them up. No timer delay is added unless `maxDelayMs` asks for one.
 */
export interface BatcherOptions {
  /** Most images per model call; a single larger request still runs alone. */
  maxImages: number;
  /** Wait this long for company before a flush (0 = only what arrived in the same loop turn). */
  maxDelayMs: number;
  /** Values per image, H·W·C (default 784, an MNIST image). */
  pixelsPerImage?: number;
}

/**
 * What one model call says of its images: the top-1 labels (the argmax of the model's own output, so
 * the same as a labels-only call), and — when the model function gives them — each image's class
 * probabilities, count × classes, row-major. Probabilities stay inside the service unless the output
 * policy lets them out (victim/http/outputs.ts).
 */
export interface Prediction {
  labels: Int32Array;
  probabilities?: Float32Array;
}

/** A model function: labels only (a Labeler), or labels with probabilities. */
export type ModelCall = (images: Float32Array, count: number) => Int32Array | Prediction | Promise<Int32Array | Prediction>;

interface Job {
  images: Float32Array;
  count: number;
  resolve: (answer: Prediction) => void;
  reject: (e: unknown) => void;
}

export interface BatcherStats {
  requests: number;
  images: number;
  modelCalls: number;
}

export class MicroBatcher {
  private queue: Job[] = [];
  private queuedImages = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private running = false;
  private idleWaiters: (() => void)[] = [];
  readonly stats: BatcherStats = { requests: 0, images: 0, modelCalls: 0 };

  constructor(
    private readonly run: ModelCall,
    private readonly opts: BatcherOptions = { maxImages: 1024, maxDelayMs: 0 },
  ) {}

  label(images: Float32Array, count: number): Promise<Int32Array> {
    return this.enqueue(images, count).then((p) => p.labels);
  }

  /** Labels and probabilities; refused when the model function gives labels only. */
  async predict(images: Float32Array, count: number): Promise<Required<Prediction>> {
    const p = await this.enqueue(images, count);
    if (!p.probabilities) throw new Error('the model function gives labels only, not probabilities');
    return { labels: p.labels, probabilities: p.probabilities };
  }

  private enqueue(images: Float32Array, count: number): Promise<Prediction> {
    return new Promise((resolve, reject) => {
      this.queue.push({ images, count, resolve, reject });
      this.queuedImages += count;
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or running (graceful shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(): void {
    if (this.running || this.timer) return;
    const full = this.queuedImages >= this.opts.maxImages;
    this.timer =
      full || this.opts.maxDelayMs <= 0 ? setImmediate(() => void this.flush()) : setTimeout(() => void this.flush(), this.opts.maxDelayMs);
  }

  private take(): Job[] {
    const jobs: Job[] = [];
    let images = 0;
    while (this.queue.length && (jobs.length === 0 || images + this.queue[0].count <= this.opts.maxImages)) {
      const job = this.queue.shift() as Job;
      images += job.count;
      jobs.push(job);
    }
    this.queuedImages -= images;
    return jobs;
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    const jobs = this.take();
    if (jobs.length === 0) return this.settle();
    this.running = true;
    const total = jobs.reduce((s, j) => s + j.count, 0);
    const per = this.opts.pixelsPerImage ?? IMAGE_SIZE;
    try {
      let input: Float32Array;
      if (jobs.length === 1) input = jobs[0].images;
      else {
        input = new Float32Array(total * per);
        let off = 0;
        for (const j of jobs) {
          input.set(j.images.subarray(0, j.count * per), off);
          off += j.count * per;
        }
      }
      const out = await this.run(input, total);
      const { labels, probabilities } = out instanceof Int32Array ? { labels: out, probabilities: undefined } : out;
      if (labels.length !== total) throw new Error(`model returned ${labels.length} labels for ${total} images`);
      const classes = probabilities ? probabilities.length / total : 0;
      if (probabilities && !Number.isInteger(classes)) throw new Error(`model returned ${probabilities.length} probabilities for ${total} images`);
      this.stats.modelCalls++;
      this.stats.requests += jobs.length;
      this.stats.images += total;
      let off = 0;
      for (const j of jobs) {
        j.resolve({ labels: labels.slice(off, off + j.count), ...(probabilities ? { probabilities: probabilities.slice(off * classes, (off + j.count) * classes) } : {}) });
        off += j.count;
      }
    } catch (e) {
      for (const j of jobs) j.reject(e);
    } finally {
      this.running = false;
      this.settle();
    }
  }

  private settle(): void {
    if (this.queue.length) this.schedule();
    else if (!this.running) for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** Labels from a TF.js model, synchronously, with every intermediate tensor released. */
export function modelLabeler(model: Model, batchSize = 1024): Labeler {
  return (images, count) => labelImages(model, images, count, batchSize);
}

/** Run the model once so the first client does not pay for kernel set-up. */
export async function warmUp(label: Labeler, pixelsPerImage = IMAGE_SIZE): Promise<void> {
  const before = tf.memory().numTensors;
  await label(new Float32Array(pixelsPerImage), 1);
  if (tf.memory().numTensors > before) throw new Error(`the labeller leaked ${tf.memory().numTensors - before} tensor(s)`);
}
