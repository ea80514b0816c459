// What `orpo compare` writes to results.json: per method, its training cost and held-out curves; per judge, mean
// scores and head-to-head win rates.
import type { Estimate, WinRate } from './win-rates.js';

/** a held-out evaluation record: step plus eval_* metrics (metrics.jsonl's names) */
export type CurvePoint = Readonly<Record<string, number>>;

export interface MethodRun {
  /** the method as named on the command line (orpo, sft, dpo, simpo, sft+dpo) */
  name: string;
  /** the folder of the final model */
  dir: string;
  /** the objective's options as resolved (beta, loss_type, ...) */
  options: Readonly<Record<string, unknown>>;
  /** optimizer steps (sft+dpo: both stages) */
  steps: number;
  wall_seconds: number;
  /** real tokens run through the policy (training steps and evaluations) and through a reference model */
  forward_tokens: number;
  reference_forward_tokens: number;
  /** peak resident memory of the training process (the larger stage for sft+dpo) */
  peak_rss_mb: number;
  /** held-out evaluations over the steps (sft+dpo: the DPO stage's steps follow the SFT stage's) */
  curve: CurvePoint[];
  /** the last evaluation */
  final: CurvePoint;
  /** sft+dpo: the stages, each a run of its own */
  stages?: string[];
}

export interface JudgeResults {
  file: string;
  kind: 'pointwise' | 'pairwise';
  prompts: number;
  /** contestants: 'base' (the starting model) and every method */
  contestants: string[];
  /** pointwise judges: each contestant's mean score */
  scores?: Record<string, Estimate>;
  winRates: WinRate[];
  sampling: { temperature: number; top_p: number; top_k: number; max_new_tokens: number; seed: number; stop_token_ids: number[] };
}

export interface CompareResults {
  model: string;
  dataset: string;
  eval_pairs: number;
  train_pairs: number;
  methods: string[];
  runs: MethodRun[];
  judge: JudgeResults | null;
  /** the neutral metrics' meaning, for readers of the JSON */
  notes: string[];
}
