// The seam between the model and a training method (TRL's get_batch_loss_metrics, kept pure): an objective sees
// per-token log-probs of one collated batch in TRL's layout (chosen rows, then rejected rows; sequence-logps.ts
// computes them) and returns its loss, d loss / d logp and its metrics. ORPO, SFT, DPO and SimPO are each one
// small file in objectives/; the trainer, evaluation, accumulation, checkpoints and resume take an Objective and
// never name a method.
import type { PackedBatch } from '../data/collate.js';
import type { MetricName, Metrics } from './metric-names.js';

export type Method = 'orpo' | 'sft' | 'dpo' | 'simpo';
export const METHODS: readonly Method[] = ['orpo', 'sft', 'dpo', 'simpo'];

/** tokens the NLL (SFT) term covers: prompt and response ('full', TRL's ORPO) or the response only (SFTTrainer's completion_only_loss) */
export type SftScope = 'full' | 'response';

/**
 * What an objective normalises by. Per micro-batch for its own metrics; summed over every micro-batch of an
 * optimizer step for the loss, so that k micro-batches of n pairs give exactly the update of one batch of k*n.
 */
export interface Units {
  pairs: number;
  /** tokens the NLL term averages over (depends on the objective's SFT scope) */
  nllTokens: number;
  /** response tokens of the chosen and of the rejected rows */
  chosenTokens: number;
  rejectedTokens: number;
}

export const ZERO_UNITS: Units = { pairs: 0, nllTokens: 0, chosenTokens: 0, rejectedTokens: 0 };

export function addUnits(a: Units, b: Units): Units {
  return { pairs: a.pairs + b.pairs, nllTokens: a.nllTokens + b.nllTokens, chosenTokens: a.chosenTokens + b.chosenTokens,
    rejectedTokens: a.rejectedTokens + b.rejectedTokens };
}

/** The reference model's SUMMED response log-probs per pair (DPO), precomputed or computed on the fly. */
export interface ReferenceLogps {
  chosen: Float64Array;
  rejected: Float64Array;
}

/** What an objective sees of one batch; the (R*T) grids are TRL's: entry r*T + t is about predicting ids[r, t+1]. */
export interface SequenceScores {
  batch: PackedBatch;
  /** per-token log-prob of the next token; 0 where not computed (padding; rejected rows of a chosen-only forward) */
  logp: Float64Array;
  /** per-token mean of the logits over the vocabulary, and 1 where the argmax is the target (when asked for) */
  meanLogit: Float64Array | null;
  hit: Uint8Array | null;
  /** the reference model's summed response log-probs (objectives that need one) */
  reference: ReferenceLogps | null;
}

export interface ObjectiveResult {
  /** this batch's share of the step loss (normalised by the step's units: the sum over micro-batches is the step loss) */
  loss: number;
  /** d loss / d logp on the (R*T) grid, with the same normalisation */
  dlogp: Float64Array;
  /** metrics of this batch alone, TRL's names */
  metrics: Metrics;
  /** per pair, the sequence log-prob the method uses (ORPO, SimPO: mean over the response; DPO: sum; SFT: mean) */
  logpsChosen: Float64Array;
  logpsRejected: Float64Array;
}

/** how a metric of several batches combines: a mean weighted by one of the units, or derived from the others */
export type Combine = keyof Units | 'derived';

export interface Objective {
  readonly method: Method;
  /** the options as resolved (defaults filled), for logs and results */
  readonly options: Readonly<Record<string, number | string | boolean>>;
  /** rows the training forward needs: SFT trains on the chosen rows only */
  readonly trainRows: 'chosen' | 'pairs';
  readonly needsReference: boolean;
  /** needs the per-token logit means / argmax hits (TRL's logits/* metrics, SFT's mean_token_accuracy) */
  readonly needsLogitStats: boolean;
  /** the metrics it reports and how each combines across batches */
  readonly combine: Partial<Record<MetricName, Combine>>;
  units(batch: PackedBatch): Units;
  /** loss, gradient and metrics of one batch; `step` = the units of the whole optimizer step (default: this batch's) */
  compute(s: SequenceScores, step?: Units): ObjectiveResult;
  /** fills the 'derived' metrics from the combined others (ORPO: loss = nll_loss − λ·log_odds_ratio) */
  derive?(m: Metrics): void;
}
