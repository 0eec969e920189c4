import cliProgress from 'cli-progress';

/**
 * A terminal progress bar for batch loops (tfjs-examples style, driven from onBatchEnd).
 * Off when stderr is not a terminal or TRANSFERLAB_QUIET is set, so logs and CI stay clean.
 */
export interface Progress {
  start(total: number, label: string): void;
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(format = '{label} [{bar}] {value}/{total} {stats} ETA {eta_formatted}'): Progress {
  const enabled = process.stderr.isTTY && !process.env.TRANSFERLAB_QUIET;
  if (!enabled) return { start() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: false, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, label) => bar.start(total, 0, { label, stats: '' }),
    update: (value, payload) => bar.update(value, payload),
    stop: () => bar.stop(),
  };
}
