// Every metric name a training objective reports, in one place: TRL's names (ORPOTrainer, DPOTrainer, CPOTrainer,
// SFTTrainer), plus the method-neutral ones every evaluation adds so that methods can be compared on one scale.
// Use the constants, never the strings: a typo is then a compile error.

export const METRIC = {
  loss: 'loss',
  // ORPO
  nllLoss: 'nll_loss',
  logOddsRatio: 'log_odds_ratio',
  logOddsChosen: 'log_odds_chosen',
  // preference methods (TRL's rewards/* and logps/*: what "logps" means is the method's own, mean or sum)
  logpsChosen: 'logps/chosen',
  logpsRejected: 'logps/rejected',
  rewardsChosen: 'rewards/chosen',
  rewardsRejected: 'rewards/rejected',
  rewardsAccuracies: 'rewards/accuracies',
  rewardsMargins: 'rewards/margins',
  logitsChosen: 'logits/chosen',
  logitsRejected: 'logits/rejected',
  // SFT
  meanTokenAccuracy: 'mean_token_accuracy',
  // method-neutral (evaluation, every method): per-token mean log-prob of the chosen and rejected responses,
  // how often chosen is the more likely one, and by how much
  meanLogpChosen: 'mean_logps/chosen',
  meanLogpRejected: 'mean_logps/rejected',
  meanLogpAccuracy: 'mean_logps/accuracy',
  meanLogpMargin: 'mean_logps/margin',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** metric values by TRL name (a method reports the names it defines) */
export type Metrics = Partial<Record<MetricName, number>>;

/** the method-neutral metrics, computed for every method in evaluation */
export const NEUTRAL_METRICS = [METRIC.meanLogpChosen, METRIC.meanLogpRejected, METRIC.meanLogpAccuracy, METRIC.meanLogpMargin] as const;

/** what the trainer logs beside the objective's metrics (transformers' Trainer names) */
export const TRAINER_LOG = {
  learningRate: 'learning_rate',
  gradNorm: 'grad_norm',
  tokensPerSecond: 'tokens_per_second',
} as const;

/** an evaluation record's name for a metric (metrics.jsonl, results.json) */
export const evalName = (m: MetricName): `eval_${MetricName}` => `eval_${m}`;
