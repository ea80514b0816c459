// Health checks of the numbers a run keeps (weights, gradients, AdamW moments), by tensor name. They run where
// numbers leave or enter the process (a checkpoint written or loaded) and after a step already failed, never on
// every step: with the kernels' sum of squares one pass is about 1 ms per million values, far below writing them.

import { isHostBackend, type Backend, type Kernels } from '../backend/kernels.js';
import { sumOfSquares } from './adamw.js';

/** One named tensor in a flat buffer (a model's layout, or a LoRA adapter's A and B factors). */
export interface NamedRange {
  name: string;
  offset: number;
  size: number;
}

/** A tensor holding values that must not be there. */
export interface TensorProblem {
  name: string;
  /** NaN, +Inf or -Inf values */
  nonFinite: number;
  /** values below zero (counted only where none is allowed: AdamW's second moments) */
  negative: number;
  size: number;
}

/**
 * true when every value is finite. With `kernels`, their (threaded, vectorised) sum of squares first: NaN and ±Inf
 * make it non-finite, so a finite sum proves the buffer sound; only a non-finite one (or overflow of huge finite
 * values) takes the exact pass, where x * 0 is 0 for finite x and NaN otherwise.
 */
export function allFinite(x: Float32Array, kernels?: Kernels): boolean {
  if (kernels !== undefined && Number.isFinite(kernels.sumSquares(x, x.length))) return true;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * 0;
  return s === 0;
}

/**
 * allFinite over a buffer of any backend: the backend's sum of squares, and only when that is not finite the values
 * themselves (downloaded: a GPU sums in float32, so huge finite values can overflow the sum).
 */
export async function allFiniteOn<F, I>(k: Backend<F, I>, x: F): Promise<boolean> {
  if (isHostBackend(k)) return allFinite(x as never, k);
  if (Number.isFinite(await sumOfSquares(k, x))) return true;
  return allFinite(await k.download(x));
}

/** true when every value is finite and >= 0 (AdamW's exp_avg_sq can be neither NaN nor negative). */
export function allFiniteNonNegative(x: Float32Array): boolean {
  let s = 0;
  let negative = false;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    s += v * 0;
    negative ||= v < 0;
  }
  return s === 0 && !negative;
}

/**
 * The tensors of `buffer` holding non-finite (and, with `nonNegative`, negative) values, in layout order. Parts of
 * the buffer no range covers are reported as `[offset, end)` so that nothing goes unchecked.
 */
export function tensorProblems(buffer: Float32Array, layout: readonly NamedRange[], opts: { nonNegative?: boolean } = {}): TensorProblem[] {
  const problems: TensorProblem[] = [];
  const check = (name: string, offset: number, size: number): void => {
    let nonFinite = 0;
    let negative = 0;
    for (let i = offset; i < offset + size; i++) {
      const v = buffer[i]!;
      if (!Number.isFinite(v)) nonFinite++;
      else if (opts.nonNegative === true && v < 0) negative++;
    }
    if (nonFinite > 0 || negative > 0) problems.push({ name, nonFinite, negative, size });
  };
  const sorted = [...layout].sort((a, b) => a.offset - b.offset);
  let covered = 0;
  for (const r of sorted) {
    if (r.offset > covered) check(`[${covered}, ${r.offset})`, covered, r.offset - covered);
    check(r.name, r.offset, r.size);
    covered = Math.max(covered, r.offset + r.size);
  }
  if (covered < buffer.length) check(`[${covered}, ${buffer.length})`, covered, buffer.length - covered);
  return problems;
}

/** "model.norm.weight (1 of 16 values NaN/Inf), lm_head.weight (...)", the first `limit` by name and a count of the rest */
export function describeProblems(problems: readonly TensorProblem[], limit = 3): string {
  const one = (p: TensorProblem): string => {
    const parts: string[] = [];
    if (p.nonFinite > 0) parts.push(`${p.nonFinite} of ${p.size} values NaN/Inf`);
    if (p.negative > 0) parts.push(`${p.negative} of ${p.size} values negative`);
    return `${p.name} (${parts.join(', ')})`;
  };
  const shown = problems.slice(0, limit).map(one).join(', ');
  const more = problems.length - limit;
  return more > 0 ? `${shown} and ${more} more tensor${more === 1 ? '' : 's'}` : shown;
}
