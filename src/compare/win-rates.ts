// Judging methods against each other on the same prompts: mean judge scores and head-to-head win rates with 95%
// confidence intervals. Pure arithmetic over per-prompt outcomes; no files, no models.

/** a mean and its 95% confidence interval (normal approximation over prompts, clipped to the range when given) */
export interface Estimate {
  mean: number;
  ci95: [number, number];
  n: number;
}

export function estimate(values: readonly number[], range: [number, number] = [-Infinity, Infinity]): Estimate {
  const n = values.length;
  if (n === 0) return { mean: NaN, ci95: [NaN, NaN], n: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  const half = 1.96 * Math.sqrt(variance / n);
  return { mean, ci95: [Math.max(range[0], mean - half), Math.min(range[1], mean + half)], n };
}

export interface WinRate {
  a: string;
  b: string;
  /** prompts where a's completion is judged better, equal, worse than b's */
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties / 2) / n, with its 95% interval */
  winRate: Estimate;
}

/**
 * Per-prompt outcome of a against b in [0, 1] (1 = a better, 0.5 = tie, 0 = b better), as a pointwise judge's
 * scores decide it.
 */
export function pointwiseOutcomes(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`win rate: ${a.length} scores against ${b.length}`);
  return a.map((x, i) => (x > b[i]! ? 1 : x < b[i]! ? 0 : 0.5));
}

/**
 * A pairwise judge's verdicts in both orders ((a, b) and (b, a), each −1, 0 or 1 for "the first is worse, equal,
 * better") as one outcome in [0, 1]: asking both ways cancels a judge's preference for a position.
 */
export function pairwiseOutcome(ab: number, ba: number): number {
  return 0.5 + (ab - ba) / 4;
}

export function winRate(a: string, b: string, outcomes: readonly number[]): WinRate {
  let wins = 0;
  let ties = 0;
  let losses = 0;
  for (const o of outcomes) {
    if (o > 0.5) wins++;
    else if (o < 0.5) losses++;
    else ties++;
  }
  return { a, b, wins, ties, losses, winRate: estimate(outcomes, [0, 1]) };
}
