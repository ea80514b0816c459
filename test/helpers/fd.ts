// Central finite differences in float64: the reference every backward kernel is checked against.
//
// A backward kernel is checked on a random linear functional of its forward output, L = sum(w * out):
// the backward pass is run with dout = w into gradient buffers pre-filled with random values (so a kernel
// that writes where it must accumulate is caught), and the increment it added is compared with
//   dL/dx_i ≈ sum_j w_j (out_j(x + h e_i) - out_j(x - h e_i)) / (2h).
// The sum is taken over output DIFFERENCES rather than over two evaluations of L: outputs that x_i does
// not touch are recomputed bit-identically and cancel exactly, so the rounding noise is that of the
// affected outputs only (~ eps |out| / h ≈ 2e-10 |out|), far below the 1e-6 relative tolerance.
import type { FloatArray } from '../../src/backend/kernels.js';
import { Rng } from '../../src/tensor/rng.js';

/** step of the central difference: truncation error ~ h^2 |f'''| ≈ 1e-12, rounding ~ eps/h ≈ 2e-10 */
export const FD_STEP = 1e-6;
/** default relative tolerance on each gradient element */
export const FD_RTOL = 1e-6;

export function randomNormal(rng: Rng, n: number, scale = 1): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * rng.normal();
  return x;
}

export function randomUniform(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng.uniform();
  return x;
}

/** One differentiable input: the buffer forward reads, and the buffer backward accumulates its gradient into. */
export interface GradInput {
  name: string;
  x: Float64Array;
  /** null: the gradient of this input is checked to be zero by finite differences only (backward has no output) */
  dx: Float64Array | null;
  /** backward WRITES this input's gradient (overrides the case's `writes`: matmulBackward's dinp without accumulate) */
  writes?: boolean;
}

export interface BackwardCase {
  name: string;
  inputs: GradInput[];
  /** recompute the forward output from the current inputs; returns the output buffer (it is copied) */
  forward: () => FloatArray;
  /** run the backward kernel with dout = w at the point forward last saw */
  backward: (dout: Float64Array) => void;
  /** backward WRITES its gradients (logprobBackward) instead of accumulating */
  writes?: boolean;
}

export interface GradientMismatch {
  index: number;
  analytic: number;
  numeric: number;
  /** |analytic - numeric| divided by the allowed error: > 1 fails */
  ratio: number;
}

export interface GradientReport {
  name: string;
  /** the worst element (largest ratio), whether or not it passed */
  worst: GradientMismatch;
  /** worst |analytic - numeric| / max(|analytic|, |numeric|) over elements above the absolute floor */
  maxRelError: number;
  ok: boolean;
}

/** Numeric gradient of sum(w * forward()) with respect to every element of x (restored afterwards). */
export function numericGradient(x: Float64Array, forward: () => FloatArray, w: Float64Array,
  h = FD_STEP): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    // the step actually taken, as rounded in float64, so inputs far from 1 do not bias the quotient
    const xp = x0 + h;
    const xm = x0 - h;
    x[i] = xp;
    const outPlus = Float64Array.from(forward());
    x[i] = xm;
    const outMinus = forward();
    x[i] = x0;
    let s = 0;
    for (let j = 0; j < w.length; j++) s += w[j] * (outPlus[j] - outMinus[j]);
    grad[i] = s / (xp - xm);
  }
  forward(); // leave saved statistics (mean, rstd, lse) as they were at the unperturbed point
  return grad;
}

/**
 * Element-wise comparison: |a - n| <= rtol * max(|a|, |n|) + atol, with atol = 1e-3 * rtol * max|n| (at least
 * 1e-12): elements orders of magnitude below the typical gradient are compared absolutely, since their
 * relative error is dominated by finite-difference noise.
 */
export function compareGradients(name: string, analytic: Float64Array, numeric: Float64Array,
  rtol = FD_RTOL): GradientReport {
  if (analytic.length !== numeric.length) throw new Error(`${name}: ${analytic.length} vs ${numeric.length} elements`);
  let maxAbs = 0;
  for (const v of numeric) maxAbs = Math.max(maxAbs, Math.abs(v));
  const atol = Math.max(1e-3 * rtol * maxAbs, 1e-12);
  let worst: GradientMismatch = { index: -1, analytic: 0, numeric: 0, ratio: 0 };
  let maxRelError = 0;
  for (let i = 0; i < numeric.length; i++) {
    const a = analytic[i];
    const n = numeric[i];
    const size = Math.max(Math.abs(a), Math.abs(n));
    const err = Math.abs(a - n);
    // a NaN anywhere must fail, so it counts as an infinite error
    const ratio = Number.isNaN(err) ? Infinity : err / (rtol * size + atol);
    if (ratio > worst.ratio || worst.index < 0) worst = { index: i, analytic: a, numeric: n, ratio };
    if (size > atol) maxRelError = Math.max(maxRelError, Number.isNaN(err) ? Infinity : err / size);
  }
  return { name, worst, maxRelError, ok: worst.ratio <= 1 };
}

/** Run forward, backward (dout = random w, gradients pre-filled), and finite differences; one report per input. */
export function checkBackward(c: BackwardCase, rng: Rng, rtol = FD_RTOL): GradientReport[] {
  const out = c.forward();
  const w = randomUniform(rng, out.length);
  const prefills = c.inputs.map((inp) => {
    if (!inp.dx) return null;
    const fill = randomUniform(rng, inp.dx.length);
    inp.dx.set(fill);
    return fill;
  });
  c.backward(w);
  return c.inputs.map((inp, k) => {
    const numeric = numericGradient(inp.x, c.forward, w);
    let analytic = new Float64Array(inp.x.length);
    if (inp.dx) {
      const before = prefills[k]!;
      analytic = (inp.writes ?? c.writes) ? Float64Array.from(inp.dx) : inp.dx.map((v, i) => v - before[i]);
    }
    return compareGradients(`${c.name}: d${inp.name}`, analytic, numeric, rtol);
  });
}

export function describeReport(r: GradientReport): string {
  const { index, analytic, numeric, ratio } = r.worst;
  return `${r.name}: worst element ${index}: backward ${analytic}, finite difference ${numeric} ` +
    `(${ratio.toExponential(2)} x tolerance; max relative error ${r.maxRelError.toExponential(2)})`;
}
