// Length distributions for `orpo data stats`: nearest-rank percentiles, so every figure is a length that occurs.

export interface LengthSummary {
  count: number;
  total: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of sorted values: the smallest value with at least q of the data at or below it. */
function nearestRank(sorted: readonly number[], q: number): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

export function summarizeLengths(values: readonly number[]): LengthSummary {
  if (values.length === 0) return { count: 0, total: 0, mean: 0, min: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const total = sorted.reduce((s, v) => s + v, 0);
  return {
    count: sorted.length,
    total,
    mean: total / sorted.length,
    min: sorted[0]!,
    p50: nearestRank(sorted, 0.5),
    p90: nearestRank(sorted, 0.9),
    p99: nearestRank(sorted, 0.99),
    max: sorted[sorted.length - 1]!,
  };
}
