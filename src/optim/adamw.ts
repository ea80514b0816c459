// AdamW with torch.optim.AdamW semantics (decoupled weight decay, bias correction), over the flat gradient
// buffer, and global-norm gradient clipping as torch.nn.utils.clip_grad_norm_.
import type { Kernels } from '../backend/kernels.js';
import { getKernels } from '../backend/index.js';

export interface AdamWHyperparams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  /** first and second moments, one allocation each, laid out like the parameters */
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** optimizer steps taken so far (torch's `step` state) */
  step = 0;

  constructor(readonly size: number, readonly hp: AdamWHyperparams, private readonly kernels: Kernels = getKernels()) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** one update of params from grads at learning rate lr (the schedule's current value) */
  update(params: Float32Array, grads: Float32Array, lr: number = this.hp.lr): void {
    if (params.length !== this.size || grads.length !== this.size) {
      throw new Error(`AdamW: expected ${this.size} parameters and gradients, got ${params.length} and ${grads.length}`);
    }
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.hp;
    this.kernels.adamwStep(params, grads, this.m, this.v, this.size, lr, beta1, beta2, eps, weightDecay, this.step);
  }
}

/** Global L2 norm of the gradients. */
export function gradNorm(grads: Float32Array, kernels: Kernels = getKernels()): number {
  return Math.sqrt(kernels.sumSquares(grads, grads.length));
}

/**
 * Scale gradients so their global L2 norm is at most maxNorm; returns the norm before clipping (torch's
 * clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), applied only when below 1).
 */
export function clipGradNorm(grads: Float32Array, maxNorm: number, kernels: Kernels = getKernels()): number {
  const norm = gradNorm(grads, kernels);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) kernels.scale(grads, coef, grads.length);
  return norm;
}
