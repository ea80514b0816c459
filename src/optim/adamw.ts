// AdamW with torch.optim.AdamW semantics (decoupled weight decay, bias correction), over the flat gradient
// buffer, and global-norm gradient clipping as torch.nn.utils.clip_grad_norm_. Both run on the backend that owns
// the buffers; the gradient norm is the one number that comes back to the host.
import { isHostBackend, type Backend } from '../backend/kernels.js';
import { getKernels } from '../backend/index.js';

export interface AdamWHyperparams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW<F = Float32Array> {
  /** first and second moments, one allocation each, laid out like the parameters */
  readonly m: F;
  readonly v: F;
  /** optimizer steps taken so far (torch's `step` state) */
  step = 0;

  constructor(readonly size: number, readonly hp: AdamWHyperparams,
    readonly kernels: Backend<F, unknown> = getKernels() as unknown as Backend<F, unknown>) {
    this.m = kernels.allocFloats(size);
    this.v = kernels.allocFloats(size);
  }

  /** one update of params from grads at learning rate lr (the schedule's current value) */
  update(params: F, grads: F, lr: number = this.hp.lr): void {
    const k = this.kernels;
    if (k.lengthOf(params) !== this.size || k.lengthOf(grads) !== this.size) {
      throw new Error(`AdamW: expected ${this.size} parameters and gradients, got ${k.lengthOf(params)} and ${k.lengthOf(grads)}`);
    }
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.hp;
    k.adamwStep(params, grads, this.m, this.v, this.size, lr, beta1, beta2, eps, weightDecay, this.step);
  }
}

const scratch = new WeakMap<object, unknown>();

/**
 * The sum of squares of x (N): at once on the CPU backends (float64 accumulation, returned as it is), otherwise
 * written into a one-element buffer of the backend and read back (the step's awaited point for the norm).
 */
export async function sumOfSquares<F, I>(kernels: Backend<F, I>, x: F, N: number = kernels.lengthOf(x)): Promise<number> {
  if (isHostBackend(kernels)) return kernels.sumSquares(x as never, N);
  let out = scratch.get(kernels) as F | undefined;
  if (out === undefined) {
    out = kernels.allocFloats(1);
    scratch.set(kernels, out);
  }
  kernels.sumSquaresInto(out, x, N);
  return (await kernels.download(out))[0]!;
}

/** Global L2 norm of the gradients. */
export async function gradNorm<F, I>(grads: F, kernels: Backend<F, I>): Promise<number> {
  return Math.sqrt(await sumOfSquares(kernels, grads));
}

/**
 * Scale gradients so their global L2 norm is at most maxNorm; returns the norm before clipping (torch's
 * clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), applied only when below 1).
 */
export async function clipGradNorm<F, I>(grads: F, maxNorm: number, kernels: Backend<F, I>): Promise<number> {
  const norm = await gradNorm(grads, kernels);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) kernels.scale(grads, coef, kernels.lengthOf(grads));
  return norm;
}
