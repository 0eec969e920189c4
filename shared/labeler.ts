/**
 * The one shape of "something that labels images", on both sides of the wire: the victim's model and
 * its micro-batcher, the adversary's paid oracle, a local substitute probed like the victim, a
 * boundary search's or a query attack's probes.
 *
 * `images` holds `count` row-major H×W×C images with values in [0, 1]; the answer holds their top-1
 * labels in the same order. One call is one batch: for the victim, `count` paid queries.
 *
 * A model labelled in-process may answer at once (TF.js cpu/wasm inference blocks anyway), everything
 * behind HTTP or a micro-batch answers later; so the answer is either, and every consumer awaits it.
 * An `async` function, `MicroBatcher.label` and a synchronous model call all fit.
 */
export type Labeler = (images: Float32Array, count: number) => Int32Array | Promise<Int32Array>;
