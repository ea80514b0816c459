// Combining an objective's metrics over several batches (micro-batches of one optimizer step, evaluation batches,
// or the steps of one logging window) into the metrics of their union: each metric is a mean weighted by the unit
// the objective names for it (pairs, NLL tokens, chosen or rejected response tokens), and derived metrics (ORPO's
// loss = nll − λ·mean logσ(log odds)) are rebuilt from the combined others, so the result equals one pass over the
// whole set.

import { METRIC, NEUTRAL_METRICS, type MetricName, type Metrics } from '../loss/metric-names.js';
import type { Combine, Objective, Units } from '../loss/objective.js';

/** ORPO's metrics in the order they are printed (orpo eval) */
export const ORPO_METRIC_NAMES = [
  METRIC.loss, METRIC.nllLoss, METRIC.logOddsRatio, METRIC.logOddsChosen, METRIC.logpsChosen, METRIC.logpsRejected,
  METRIC.rewardsChosen, METRIC.rewardsRejected, METRIC.rewardsAccuracies, METRIC.rewardsMargins,
] as const;

export interface AccumulatorJSON {
  /** per metric: sum of value × weight, and the weights */
  sums: Record<string, number>;
  weights: Record<string, number>;
}

export class MetricAccumulator {
  private sums = new Map<string, number>();
  private weights = new Map<string, number>();

  constructor(private readonly objective: Pick<Objective, 'combine' | 'derive'>) {}

  private combineOf(name: string): Combine | undefined {
    if ((NEUTRAL_METRICS as readonly string[]).includes(name)) return 'pairs';
    return this.objective.combine[name as MetricName];
  }

  /** the metrics of one batch with these units */
  add(metrics: Metrics, units: Units): void {
    for (const [name, value] of Object.entries(metrics)) {
      const how = this.combineOf(name);
      if (how === undefined || how === 'derived') continue;
      const w = units[how];
      this.sums.set(name, (this.sums.get(name) ?? 0) + value * w);
      this.weights.set(name, (this.weights.get(name) ?? 0) + w);
    }
  }

  get empty(): boolean {
    return this.weights.size === 0;
  }

  result(): Metrics {
    const out: Record<string, number> = {};
    for (const [name, sum] of this.sums) out[name] = sum / this.weights.get(name)!;
    const m = out as Metrics;
    this.objective.derive?.(m);
    // the loss first, as TRL prints it
    return { [METRIC.loss]: m[METRIC.loss], ...m };
  }

  /** plain-JSON form, for a checkpoint taken in the middle of a logging window */
  toJSON(): AccumulatorJSON {
    return { sums: Object.fromEntries(this.sums), weights: Object.fromEntries(this.weights) };
  }

  static fromJSON(objective: Pick<Objective, 'combine' | 'derive'>, j: AccumulatorJSON): MetricAccumulator {
    const acc = new MetricAccumulator(objective);
    acc.sums = new Map(Object.entries(j.sums ?? {}));
    acc.weights = new Map(Object.entries(j.weights ?? {}));
    return acc;
  }
}

/**
 * transformers' speed_metrics: `<split>_runtime` in seconds (4 decimals) and, over it, samples and steps per second
 * (3 decimals); nothing per second when the runtime is 0. Samples here are preference pairs, steps optimizer steps
 * (training) or batches (evaluation).
 */
export function speedMetrics(split: string, seconds: number, counts: { samples: number; steps: number }): Record<string, number> {
  const out: Record<string, number> = { [`${split}_runtime`]: Number(seconds.toFixed(4)) };
  if (seconds <= 0) return out;
  out[`${split}_samples_per_second`] = Number((counts.samples / seconds).toFixed(3));
  out[`${split}_steps_per_second`] = Number((counts.steps / seconds).toFixed(3));
  return out;
}
