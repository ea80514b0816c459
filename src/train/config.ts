// `orpo train`'s options: TRL's ORPOConfig / TrainingArguments names and defaults, one table (see options.ts).
// Cross-option rules (e.g. max_prompt_length < max_length, the data layer's rule) live in validateTrainConfig, next to the table.

import { SCHEDULER_TYPES, type SchedulerType } from '../optim/schedule.js';
import { LORA_MEMORY_OPTIONS, type LoraMemoryConfig } from '../lora/options.js';
import { OptionError, type OptionAliases, type OptionTable } from './options.js';
import { validateTruncation } from '../data/tokenize.js';
import { METHODS, type Method, type Objective } from '../loss/objective.js';
import { createObjective, DEFAULT_SIMPO_GAMMA, DPO_LOSS_TYPES, type DpoLossType } from '../loss/objectives/index.js';

/** TRL's training options plus the LoRA/memory ones (src/lora/options.ts owns those). */
export interface TrainConfig extends LoraMemoryConfig {
  model: string | null;
  dataset: string | null;
  eval_dataset: string | null;
  eval_split_ratio: number;
  output_dir: string | null;
  overwrite_output_dir: boolean;
  resume: string | null;
  method: Method;
  beta: number | null;
  sft_scope: 'full' | 'response';
  share_prompt: boolean;
  completion_only_loss: boolean;
  loss_type: DpoLossType;
  ref_model: string | null;
  precompute_ref_log_probs: boolean;
  simpo_gamma: number;
  learning_rate: number;
  num_train_epochs: number;
  max_steps: number;
  per_device_train_batch_size: number;
  group_by_length: boolean;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  lr_scheduler_type: SchedulerType;
  warmup_steps: number;
  warmup_ratio: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number;
  max_length: number;
  max_prompt_length: number | null;
  max_completion_length: number | null;
  truncation_mode: 'keep_end' | 'keep_start';
  skip_invalid: boolean;
  dataset_split: string | null;
  prompt_column: string | null;
  chosen_column: string | null;
  rejected_column: string | null;
  system_column: string | null;
  seed: number;
  logging_steps: number;
  eval_steps: number | null;
  save_steps: number;
  save_total_limit: number | null;
  save_dtype: 'float32' | 'bfloat16';
  threads: number | null;
  /** where the training step computes (none: ORPO_BACKEND, else native when built) */
  backend: 'js' | 'native' | 'webgpu' | null;
  bf16: boolean;
  /** the base weights' dtype: bfloat16 (LoRA only) keeps its matrices frozen in bfloat16 */
  torch_dtype: 'float32' | 'bfloat16' | 'auto';
  report: boolean;
  run_name: string | null;
  logging_first_step: boolean;
  eval_strategy: IntervalStrategy | null;
  eval_on_start: boolean;
  save_strategy: IntervalStrategy | null;
}

/** transformers' IntervalStrategy: when evaluations or checkpoints happen */
export type IntervalStrategy = 'no' | 'steps' | 'epoch';
const INTERVAL_STRATEGIES: readonly IntervalStrategy[] = ['no', 'steps', 'epoch'];

export const TRAIN_OPTIONS: OptionTable<TrainConfig> = {
  model: { type: 'path', default: null, group: 'Data and model', doc: 'Hugging Face model folder to start from (config.json, *.safetensors, tokenizer.json)' },
  dataset: { type: 'path', default: null, group: 'Data and model', doc: 'training preference data (.jsonl/.json/.parquet, optionally .gz): prompt/chosen/rejected' },
  eval_dataset: { type: 'path', default: null, group: 'Data and model', doc: 'held-out preference data for evaluation' },
  eval_split_ratio: { type: 'float', default: 0, min: 0, max: 0.5, group: 'Data and model', doc: 'without eval_dataset: hold out this fraction of dataset (seeded) for evaluation' },
  output_dir: { type: 'path', default: null, group: 'Data and model', doc: 'where checkpoints, the final model, metrics.jsonl and report.html go' },
  overwrite_output_dir: { type: 'bool', default: false, group: 'Data and model', doc: "training from step 0 into an output_dir that holds an earlier run's checkpoints: delete them first (transformers' overwrite_output_dir); without it such a folder is refused" },
  resume: { type: 'path', default: null, implicit: 'latest', group: 'Data and model', doc: "continue from a checkpoint folder, or 'latest' in output_dir" },
  method: { type: 'enum', choices: METHODS, default: 'orpo', group: 'Method', doc: "the objective: orpo (NLL + λ·odds-ratio term), sft (NLL of the chosen responses), dpo (needs a reference model), simpo (CPO's loss_type simpo, cpo_alpha 0)" },
  beta: { type: 'float', default: null, min: 0, symbol: 'λ', group: 'Method', doc: "β of dpo and simpo (none: TRL's 0.1; simpo 2.0); for orpo λ, the weight of the odds-ratio term" },
  completion_only_loss: { type: 'bool', default: true, group: 'Method', doc: "sft: the loss covers the response tokens only (SFTTrainer's default); false: prompt tokens too" },
  loss_type: { type: 'enum', choices: DPO_LOSS_TYPES, default: 'sigmoid', group: 'Method', doc: "dpo: sigmoid (DPO), hinge (SLiC) or ipo (on mean log-probs, as TRL)" },
  ref_model: { type: 'path', default: null, group: 'Method', doc: 'dpo: the reference model folder (none: the starting model, frozen; under LoRA the same weights with the adapters switched off, no second copy)' },
  precompute_ref_log_probs: { type: 'bool', default: false, group: 'Method', doc: "dpo: compute the reference's log-probs of every training pair once before training (one reference forward per pair instead of one per step; kept in checkpoints)" },
  simpo_gamma: { type: 'float', default: DEFAULT_SIMPO_GAMMA, min: 0, symbol: 'γ', group: 'Method', doc: 'simpo: the target reward margin' },
  sft_scope: { type: 'enum', choices: ['full', 'response'], default: 'full', group: 'ORPO', doc: "orpo: tokens in the NLL term: 'full' = prompt and chosen response (TRL), 'response' = response only" },
  share_prompt: { type: 'bool', default: true, group: 'ORPO', doc: "compute each pair's prompt once: one row prompt | chosen | rejected, the rejected tokens blind to the chosen ones; TRL's loss and gradients up to float rounding (--share-prompt false: TRL's two rows)" },
  max_length: { type: 'int', default: 1024, min: 2, group: 'ORPO', doc: 'max tokens of prompt + response; longer rows are truncated' },
  max_prompt_length: { type: 'int', default: null, min: 1, group: 'ORPO', doc: 'max prompt tokens, cut first when a row is too long (none: what the longer response leaves, at least half of max_length)' },
  max_completion_length: { type: 'int', default: null, min: 1, group: 'ORPO', doc: 'max response tokens (none: max_length - prompt)' },
  truncation_mode: { type: 'enum', choices: ['keep_end', 'keep_start'], default: 'keep_end', group: 'ORPO', doc: 'which end of a too long prompt is kept' },
  skip_invalid: { type: 'bool', default: false, group: 'Data and model', doc: 'count and skip malformed rows instead of stopping at the first' },
  dataset_split: { type: 'string', default: null, group: 'Data and model', doc: 'split of a dataset folder (e.g. train, test; none: train or all files)' },
  prompt_column: { type: 'string', default: null, group: 'Data and model', doc: "field holding the prompt (none: 'prompt')" },
  chosen_column: { type: 'string', default: null, group: 'Data and model', doc: "field holding the preferred response (none: 'chosen')" },
  rejected_column: { type: 'string', default: null, group: 'Data and model', doc: "field holding the dispreferred response (none: 'rejected')" },
  system_column: { type: 'string', default: null, group: 'Data and model', doc: "field holding a system message (none: 'system' when present)" },
  learning_rate: { type: 'float', default: 1e-6, min: 0, minExclusive: true, symbol: 'η', group: 'Optimisation', doc: 'peak AdamW learning rate (TRL ORPOConfig default)' },
  num_train_epochs: { type: 'float', default: 3, min: 0, minExclusive: true, group: 'Optimisation', doc: 'passes over the training data (ignored when max_steps > 0)' },
  max_steps: { type: 'int', default: -1, min: -1, group: 'Optimisation', doc: 'total optimizer steps; -1 = from num_train_epochs' },
  per_device_train_batch_size: { type: 'int', default: 8, min: 1, group: 'Optimisation', doc: 'preference pairs per micro-batch' },
  group_by_length: { type: 'bool', default: false, group: 'Optimisation', doc: 'batch pairs of similar length together (transformers\' LengthGroupedSampler: sorted inside shuffled mega-batches of 50 batches) to cut padding' },
  per_device_eval_batch_size: { type: 'int', default: 8, min: 1, group: 'Optimisation', doc: 'preference pairs per evaluation batch' },
  gradient_accumulation_steps: { type: 'int', default: 1, min: 1, group: 'Optimisation', doc: 'micro-batches per optimizer step (same update as one batch that many times larger)' },
  lr_scheduler_type: { type: 'enum', choices: SCHEDULER_TYPES, default: 'linear', group: 'Optimisation', doc: 'learning-rate schedule (transformers semantics)' },
  warmup_steps: { type: 'int', default: 0, min: 0, group: 'Optimisation', doc: 'linear warmup steps (wins over warmup_ratio)' },
  warmup_ratio: { type: 'float', default: 0, min: 0, max: 1, group: 'Optimisation', doc: 'warmup as a fraction of the total steps' },
  weight_decay: { type: 'float', default: 0, min: 0, group: 'Optimisation', doc: 'AdamW decoupled weight decay' },
  adam_beta1: { type: 'float', default: 0.9, min: 0, max: 1, minExclusive: false, symbol: 'β1', group: 'Optimisation', doc: 'AdamW first-moment decay' },
  adam_beta2: { type: 'float', default: 0.999, min: 0, max: 1, symbol: 'β2', group: 'Optimisation', doc: 'AdamW second-moment decay' },
  adam_epsilon: { type: 'float', default: 1e-8, min: 0, minExclusive: true, symbol: 'ε', group: 'Optimisation', doc: 'AdamW denominator epsilon' },
  max_grad_norm: { type: 'float', default: 1, min: 0, group: 'Optimisation', doc: 'clip the global gradient L2 norm to this (0 = no clipping)' },
  seed: { type: 'int', default: 42, min: 0, max: 2 ** 32 - 1, group: 'Optimisation', doc: 'seed for data order and the eval split' },
  logging_steps: { type: 'int', default: 10, min: 1, group: 'Logging and saving', doc: 'optimizer steps between metrics.jsonl records' },
  eval_steps: { type: 'int', default: null, min: 1, group: 'Logging and saving', doc: 'optimizer steps between evaluations (none: at the start and the end only)' },
  save_steps: { type: 'int', default: 500, min: 0, group: 'Logging and saving', doc: 'optimizer steps between checkpoints (0 = only the final model)' },
  save_total_limit: { type: 'int', default: null, min: 1, group: 'Logging and saving', doc: 'keep at most this many checkpoints, deleting the oldest' },
  save_dtype: { type: 'enum', choices: ['float32', 'bfloat16'], default: 'float32', group: 'Logging and saving', doc: 'dtype of the final model weights (checkpoints are always float32 so resuming is exact)' },
  report: { type: 'bool', default: true, group: 'Logging and saving', doc: 'write report.html and charts/*.svg at the end (--report false to skip)' },
  run_name: { type: 'string', default: null, group: 'Logging and saving', doc: "a name for the run, the title of report.html (none: the output folder's path)" },
  logging_first_step: { type: 'bool', default: false, group: 'Logging and saving', doc: 'also log the first optimizer step (transformers semantics)' },
  eval_strategy: { type: 'enum', choices: INTERVAL_STRATEGIES, default: null, group: 'Logging and saving', doc: "when to evaluate (transformers semantics): no, steps (every eval_steps, none: logging_steps), epoch (at each epoch's end); none: every eval_steps when given; with held-out data always at the end too" },
  eval_on_start: { type: 'bool', default: true, group: 'Logging and saving', doc: "evaluate before the first step, for the report's before/after (transformers' default is false)" },
  save_strategy: { type: 'enum', choices: INTERVAL_STRATEGIES, default: null, group: 'Logging and saving', doc: "when to checkpoint (transformers semantics): no (the final model only), steps (every save_steps), epoch (at each epoch's end); none: steps" },
  threads: { type: 'int', default: null, min: 1, group: 'Logging and saving', doc: 'compute threads (none: all cores)' },
  backend: { type: 'enum', choices: ['js', 'native', 'webgpu'], default: null, group: 'Optimisation', doc: 'where the step computes: native (the C++ addon), js (the TypeScript reference) or webgpu (a GPU through Dawn: Vulkan, Metal or D3D12); none: ORPO_BACKEND, else native when built' },
  bf16: { type: 'bool', default: false, group: 'Optimisation', doc: "mixed precision as transformers' bf16: matrix products take bfloat16-rounded inputs and sum in float32; weights, gradients, AdamW and the loss stay float32 (about 1.6x faster products where the CPU has AVX512_BF16; elsewhere the same rounding, no speed-up)" },
  torch_dtype: { type: 'enum', choices: ['float32', 'bfloat16', 'auto'], default: 'float32', group: 'Optimisation', doc: "the dtype the base model's weights are held in (TRL's ModelConfig.torch_dtype): float32; bfloat16 keeps a LoRA base's matrices in bfloat16, frozen (half the weight memory; their products are bf16 products, as --bf16's); auto: bfloat16 under LoRA when the weight files are BF16, else float32. Full fine-tuning always trains float32 weights (--bf16 for bf16 products)" },
  ...LORA_MEMORY_OPTIONS,
};

/** Rules that involve more than one option; each error names the options involved. */
export function validateTrainConfig(c: TrainConfig): void {
  const need = (key: keyof TrainConfig): void => {
    if (c[key] === null) throw new OptionError(`missing required option '${key}' (--${key.replace(/_/g, '-')})`);
  };
  need('model');
  need('dataset');
  need('output_dir');
  // the data layer's one rule, checked here too so that a bad pair of lengths stops before anything loads
  try {
    validateTruncation({ maxLength: c.max_length, maxPromptLength: c.max_prompt_length, maxCompletionLength: c.max_completion_length, truncationMode: c.truncation_mode });
  } catch (e) {
    throw new OptionError((e as Error).message);
  }
  if (c.eval_steps !== null && c.eval_dataset === null && c.eval_split_ratio === 0) {
    throw new OptionError('eval_steps needs held-out pairs to evaluate: give --eval-dataset FILE or --eval-split-ratio (e.g. 0.05), or drop --eval-steps');
  }
  const heldOut = c.eval_dataset !== null || c.eval_split_ratio > 0;
  if ((c.eval_strategy === 'steps' || c.eval_strategy === 'epoch') && !heldOut) {
    throw new OptionError(`eval_strategy ${c.eval_strategy} needs held-out pairs to evaluate: give --eval-dataset FILE or --eval-split-ratio (e.g. 0.05)`);
  }
  if (c.eval_strategy !== null && c.eval_strategy !== 'steps' && c.eval_steps !== null) {
    throw new OptionError(`eval_steps means evaluating every ${c.eval_steps} steps, eval_strategy ${c.eval_strategy} says otherwise; drop one of them`);
  }
  if (c.eval_dataset !== null && c.eval_split_ratio > 0) {
    throw new OptionError('give either eval_dataset or eval_split_ratio, not both');
  }
  if (c.torch_dtype === 'bfloat16' && c.lora_r === null) {
    throw new OptionError('torch_dtype bfloat16 keeps the base frozen in bfloat16, for LoRA: add --lora-r (or --use-peft); ' +
      'full fine-tuning trains float32 weights, and --bf16 gives it bfloat16 matrix products');
  }
  if (c.adam_beta1 >= 1 || c.adam_beta2 >= 1) throw new OptionError('adam_beta1 and adam_beta2 must be < 1');
  if (c.method !== 'dpo') {
    for (const key of ['ref_model', 'precompute_ref_log_probs'] as const) {
      if (c[key] !== TRAIN_OPTIONS[key].default) throw new OptionError(`${key} is a dpo option; method is ${c.method} (set --method dpo, or drop --${key.replace(/_/g, '-')})`);
    }
  }
  if (c.method === 'sft' && c.beta !== null) throw new OptionError('beta has no meaning for method sft (it trains on the chosen responses only); drop --beta');
  if (c.method === 'dpo' && c.loss_type === 'ipo' && c.beta === 0) throw new OptionError('loss_type ipo needs beta > 0 (its target margin is 1/(2β))');
}

/** When a run evaluates: before the first step, every `every` steps (0: never), after the last step. */
export interface EvaluationPlan { atStart: boolean; every: number; atEnd: boolean }

/** eval_strategy, eval_steps and eval_on_start -> when to evaluate (held-out data permitting), transformers' rules */
export function evaluationPlan(c: Pick<TrainConfig, 'eval_strategy' | 'eval_steps' | 'eval_on_start' | 'logging_steps'>, stepsPerEpoch: number): EvaluationPlan {
  if (c.eval_strategy === 'no') return { atStart: false, every: 0, atEnd: false };
  const every = c.eval_strategy === 'epoch' ? stepsPerEpoch
    : c.eval_strategy === 'steps' ? c.eval_steps ?? c.logging_steps : c.eval_steps ?? 0;
  return { atStart: c.eval_on_start, every, atEnd: true };
}

/** save_strategy and save_steps -> steps between checkpoints (0: the final model only) */
export function checkpointInterval(c: Pick<TrainConfig, 'save_strategy' | 'save_steps'>, stepsPerEpoch: number): number {
  if (c.save_strategy === 'no') return 0;
  return c.save_strategy === 'epoch' ? stepsPerEpoch : c.save_steps;
}

/** a TRL name that is another spelling of one of ours */
const sameAs = (to: keyof TrainConfig, doc: string, implicit?: string): OptionAliases[string] => ({
  doc, ...(implicit === undefined ? {} : { implicit }), apply: (raw) => ({ set: { [to]: raw } }),
});
/** a TRL name that means nothing here unless given one of `harmless` (then it changes nothing) */
const onlyAs = (harmless: readonly string[], why: string, doc: string): OptionAliases[string] => ({
  doc,
  apply: (raw, where) => {
    if (harmless.includes(typeof raw === 'boolean' ? String(raw) : String(raw ?? ''))) return {};
    throw new OptionError(`${where}: ${JSON.stringify(raw)} does not apply to orpo-ts: ${why}`);
  },
});

/**
 * TRL's and transformers' names for what orpo train does (TrainingArguments, ORPOConfig, ModelConfig, ScriptArguments),
 * so that a TRL config file or command line works here; a name that cannot mean what it means there is refused with
 * the reason, never ignored.
 */
export const TRAIN_ALIASES: OptionAliases = {
  model_name_or_path: sameAs('model', "TRL's name for --model (a local folder: nothing is downloaded; `huggingface-cli download ID --local-dir DIR` first)"),
  dataset_name: sameAs('dataset', "TRL's name for --dataset (a local file or folder: nothing is downloaded)"),
  resume_from_checkpoint: {
    doc: "transformers' name for --resume (true: the latest checkpoint in output_dir)",
    implicit: 'true',
    apply: (raw) => ({ set: { resume: raw === true || raw === 'true' ? 'latest' : raw } }),
  },
  evaluation_strategy: sameAs('eval_strategy', "transformers' older name for --eval-strategy"),
  use_peft: {
    doc: 'train LoRA adapters (TRL ModelConfig): --lora-r 16, its default rank, unless --lora-r is given',
    implicit: 'true',
    apply: (raw, where) => {
      if (raw === true || raw === 'true') return { fill: { lora_r: 16 } };
      if (raw === false || raw === 'false') return {};
      throw new OptionError(`${where}: invalid value ${JSON.stringify(raw)}: expected true or false`);
    },
  },
  report_to: onlyAs(['none'], 'there are no logger integrations (wandb, tensorboard, ...): every logged metric goes to output_dir/metrics.jsonl and report.html; give none or leave it out',
    'accepted as none: metrics go to metrics.jsonl and report.html'),
  save_only_model: onlyAs(['false'], 'checkpoints always hold the optimizer and data-order state, so that --resume continues exactly; the final folder holds the model only',
    'accepted as false (checkpoints always keep what an exact resume needs)'),
  load_best_model_at_end: onlyAs(['false'], 'the final folder is the last step\'s model; each evaluation is in metrics.jsonl and every checkpoint-N folder is a loadable model, so pick the best checkpoint by its eval metrics',
    'accepted as false (the final model is the last step\'s)'),
};

/** The objective the options describe (method and its options, TRL's defaults where unset). */
export function objectiveFromConfig(c: Pick<TrainConfig, 'method' | 'beta' | 'sft_scope' | 'completion_only_loss' | 'loss_type' | 'simpo_gamma'>): Objective {
  return createObjective({
    method: c.method, beta: c.beta,
    sftScope: c.method === 'sft' ? (c.completion_only_loss ? 'response' : 'full') : c.sft_scope,
    lossType: c.loss_type, simpoGamma: c.simpo_gamma,
  });
}
