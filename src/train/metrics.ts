// Combining ORPO metrics of several batches (micro-batches of one optimizer step, evaluation batches, or the
// steps of one logging window) into the metrics of their union: per-pair means weighted by pairs, the NLL
// weighted by its tokens, and the loss rebuilt from those two (loss = nll − λ·mean logσ(log odds)), so the
// result equals one pass over the whole set.

import type { OrpoMetrics } from '../loss/orpo.js';

/** TRL's metric names, in the order they are printed. */
export const ORPO_METRIC_NAMES = [
  'loss', 'nll_loss', 'log_odds_ratio', 'log_odds_chosen', 'logps/chosen', 'logps/rejected',
  'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins',
] as const;

export class MetricAccumulator {
  private sums = new Map<string, number>();
  private pairs = 0;
  private nllTokens = 0;
  private nllSum = 0;

  /** metrics of one batch of `pairs` pairs whose NLL is a mean over `nllTokens` tokens */
  add(metrics: OrpoMetrics, pairs: number, nllTokens: number): void {
    for (const [name, value] of Object.entries(metrics)) {
      if (name === 'loss' || name === 'nll_loss') continue;
      this.sums.set(name, (this.sums.get(name) ?? 0) + value * pairs);
    }
    this.pairs += pairs;
    this.nllTokens += nllTokens;
    this.nllSum += (metrics['nll_loss'] ?? NaN) * nllTokens;
  }

  get count(): number {
    return this.pairs;
  }

  result(beta: number): OrpoMetrics {
    const out: OrpoMetrics = {};
    const nll = this.nllSum / this.nllTokens;
    const logOddsRatio = (this.sums.get('log_odds_ratio') ?? NaN) / this.pairs;
    out['loss'] = nll - beta * logOddsRatio;
    out['nll_loss'] = nll;
    for (const [name, sum] of this.sums) out[name] = sum / this.pairs;
    return out;
  }

  /** plain-JSON form, for a checkpoint taken in the middle of a logging window */
  toJSON(): { sums: Record<string, number>; pairs: number; nllTokens: number; nllSum: number } {
    return { sums: Object.fromEntries(this.sums), pairs: this.pairs, nllTokens: this.nllTokens, nllSum: this.nllSum };
  }

  static fromJSON(j: ReturnType<MetricAccumulator['toJSON']>): MetricAccumulator {
    const acc = new MetricAccumulator();
    acc.sums = new Map(Object.entries(j.sums));
    acc.pairs = j.pairs;
    acc.nllTokens = j.nllTokens;
    acc.nllSum = j.nllSum;
    return acc;
  }
}
