import { defineConfig } from 'vitest/config';

// Suites share two cores and load TF.js backends, so run files one at a time in forked
// processes: parallel workers would only fight for the same cores and wasm memory.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
