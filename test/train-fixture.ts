/**
 * Trains one test victim in its own process (test/fixtures.ts starts it): `tsx test/train-fixture.ts '<recipe JSON>'`.
 * A process of its own so that the fixture can be given a deadline: a training stuck inside the wasm
 * backend blocks its thread, where no timer of the same process can fire.
 */
import { initBackend } from '../shared/engine/backend.js';
import { trainVictim, type VictimTrainConfig } from '../victim/train/train.js';

const recipe = JSON.parse(process.argv[2] ?? '') as VictimTrainConfig;
await initBackend();
await trainVictim(recipe);
