// `orpo eval`: a method's metrics (ORPO's by default) and the method-neutral ones of a model folder on a preference
// dataset, no training.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { padTokenIdOf } from '../data/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-files.js';
import { fusedLossFor, lossHeads } from '../lora/options.js';
import { NEUTRAL_METRICS } from '../loss/metric-names.js';
import { objectiveFromConfig, TRAIN_OPTIONS, type TrainConfig } from '../train/config.js';
import { evaluatePairs } from '../train/evaluate.js';
import { speedMetrics } from '../train/metrics.js';
import { OptionError, type OptionTable } from '../train/options.js';
import { resolveCommandOptions } from './args.js';
import { loadModelOrAdapter } from './model-folder.js';
import { dataLimitsOf, loadPairs } from './pairs.js';
import { loadFrozenReference } from './train.js';
import { hostKernelsNamed } from '../backend/index.js';
import { backendOf, hostDevice, webGpuDevice, type TrainingDevice } from './device.js';
import { ProgressReporter } from './progress.js';

type SharedKeys = 'model' | 'dataset' | 'method' | 'beta' | 'completion_only_loss' | 'loss_type' | 'ref_model' | 'simpo_gamma' | 'sft_scope' | 'share_prompt' | 'max_length' | 'max_prompt_length' | 'max_completion_length' |
  'truncation_mode' | 'skip_invalid' | 'dataset_split' | 'prompt_column' | 'chosen_column' | 'rejected_column' | 'system_column' |
  'per_device_eval_batch_size' | 'threads' | 'bf16' | 'torch_dtype' | 'backend';
export type EvalConfig = Pick<TrainConfig, SharedKeys> & { json: boolean };

const shared = <K extends keyof TrainConfig>(keys: readonly K[]): OptionTable<Pick<TrainConfig, K>> =>
  Object.fromEntries(keys.map((k) => [k, TRAIN_OPTIONS[k]])) as unknown as OptionTable<Pick<TrainConfig, K>>;

/** what a run's training_args.json gives orpo eval: the objective and how the data was read */
const RUN_SETTINGS = ['method', 'beta', 'completion_only_loss', 'loss_type', 'simpo_gamma', 'sft_scope', 'share_prompt', 'max_length',
  'max_prompt_length', 'max_completion_length', 'truncation_mode', 'prompt_column', 'chosen_column', 'rejected_column', 'system_column', 'torch_dtype'] as const satisfies readonly (keyof EvalConfig)[];

export const EVAL_OPTIONS: OptionTable<EvalConfig> = {
  ...shared<SharedKeys>(['model', 'dataset', 'method', 'beta', 'completion_only_loss', 'loss_type', 'ref_model', 'simpo_gamma', 'sft_scope', 'share_prompt', 'max_length', 'max_prompt_length', 'max_completion_length',
    'truncation_mode', 'skip_invalid', 'dataset_split', 'prompt_column', 'chosen_column', 'rejected_column', 'system_column',
    'per_device_eval_batch_size', 'threads', 'bf16', 'torch_dtype', 'backend']),
  json: { type: 'bool', default: false, doc: 'print the metrics as one JSON object' },
  torch_dtype: { ...TRAIN_OPTIONS.torch_dtype, doc: "the dtype the model's matrices are held in: float32, bfloat16 (half the memory; bf16 products, as a run trained with --torch-dtype bfloat16 evaluated), auto (the weight files' dtype); a run's folder gives its own" },
  // the training table's words fit training; say what these two mean here
  model: { ...TRAIN_OPTIONS.model, doc: "model folder to evaluate: a run's output or checkpoint (its training_args.json gives the defaults), a LoRA adapter folder, or any Hugging Face folder" },
  dataset: { ...TRAIN_OPTIONS.dataset, doc: 'preference data to evaluate on (.jsonl/.json/.parquet, optionally .gz): prompt/chosen/rejected' },
};

const USAGE = `Usage: orpo eval --model DIR --dataset FILE [--json] [options]

The loss and TRL metrics of a method (--method, default orpo: rewards/accuracies, rewards/margins, ...) of a
model folder on preference pairs, and the method-neutral mean_logps/* (mean response log-prob of chosen and
rejected, how often and by how much chosen wins). dpo needs --ref-model DIR.`;

export async function runEval(argv: readonly string[]): Promise<number> {
  let c = await resolveCommandOptions('eval', USAGE, argv, EVAL_OPTIONS, { allowConfig: true });
  if (c === null) return 0;
  if (c.model !== null) {
    // a run's folder (final model or checkpoint) carries its settings: evaluate as it trained unless told otherwise
    const file = join(c.model, 'training_args.json');
    const saved = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown> : null;
    if (saved !== null) {
      const values: Record<string, unknown> = Object.fromEntries(RUN_SETTINGS.filter((k) => k in saved).map((k) => [k, saved[k]]));
      // torch_dtype held the base in bfloat16 only under LoRA: a full fine-tune trained (and evaluated) float32
      if (saved['lora_r'] === null || saved['lora_r'] === undefined) delete values['torch_dtype'];
      c = (await resolveCommandOptions('eval', USAGE, argv, EVAL_OPTIONS, { allowConfig: true, base: { source: file, values } }))!;
      if (c.method === 'dpo' && c.ref_model === null && saved['method'] === 'dpo') {
        // the run's reference: its --ref-model, or the model it started from
        const ref = saved['ref_model'] ?? saved['model'];
        if (typeof ref === 'string') c = { ...c, ref_model: ref };
      }
      process.stderr.write(`using the run's settings from ${file} (${RUN_SETTINGS.filter((k) => k in values && values[k] !== EVAL_OPTIONS[k].default).map((k) => `${k} ${String(c![k])}`).join(', ')}` +
        `${c.ref_model !== null ? `, ref_model ${c.ref_model}` : ''}); flags override them\n`);
    }
  }
  if (c.model === null || c.dataset === null) throw new OptionError('orpo eval needs --model DIR and --dataset FILE');
  const backend = backendOf(c.backend);
  const weightDtype = c.torch_dtype;
  const model = await loadModelOrAdapter(c.model, backend === 'js' || backend === 'native' ? { kernels: hostKernelsNamed(backend), weightDtype } : { weightDtype });
  model.kernels.setThreads(c.threads ?? availableParallelism());
  model.kernels.setMatmulBf16(c.bf16);
  // with --backend webgpu the policy's forwards run on a copy in GPU memory (a DPO reference stays on the CPU: only
  // its summed log-probs enter the metrics)
  const device = backend === 'webgpu' ? await webGpuDevice(model, null) : hostDevice(model, null);
  device.kernels.setMatmulBf16(c.bf16);
  const tokenizer = await loadTokenizer(c.model);
  const loaded = await loadPairs(c.dataset, tokenizer, dataLimitsOf(c));
  // the chunked head when a batch's (tokens x vocab) logits would be large
  const fused = fusedLossFor({ fused_loss: null }, model.config, c.per_device_eval_batch_size, c.max_length);
  const objective = objectiveFromConfig(c);
  let reference = null;
  if (objective.needsReference) {
    if (c.ref_model === null) throw new OptionError(`orpo eval --method ${c.method} needs --ref-model DIR (the reference model the rewards are measured against)`);
    reference = await loadFrozenReference(c.ref_model, model, fused, c.share_prompt, c.ref_model);
  } else if (c.ref_model !== null) {
    throw new OptionError(`ref_model is a dpo option; method is ${c.method}`);
  }
  const reporter = new ProgressReporter();
  if (!reporter.tty) process.stderr.write(`evaluating ${loaded.pairs.length} pairs\n`);
  const evaluateOn = <F, I>(d: TrainingDevice<F, I>): ReturnType<typeof evaluatePairs> => evaluatePairs(d.model, loaded.pairs, {
    objective, reference, head: lossHeads(d.model, fused).eval, sharePrompt: c.share_prompt, batchSize: c.per_device_eval_batch_size,
    padTokenId: padTokenIdOf(tokenizer), onProgress: (done, total) => reporter.evaluating(done, total),
  });
  let out: Awaited<ReturnType<typeof evaluatePairs>>;
  try {
    out = await evaluateOn(device);
  } finally {
    reporter.finish();
    model.kernels.setMatmulBf16(false);
    device.kernels.setMatmulBf16(false);
    device.release();
  }
  const result: Record<string, number | string> = { model: c.model, dataset: c.dataset, method: c.method, backend: device.name, pairs: out.pairs };
  for (const name of [...Object.keys(objective.combine), ...NEUTRAL_METRICS] as (keyof typeof out.metrics)[]) {
    if (out.metrics[name] !== undefined) result[`eval_${name}`] = out.metrics[name];
  }
  // transformers' evaluate() names: eval_runtime (the evaluation loop), samples and batches per second
  Object.assign(result, speedMetrics('eval', out.seconds, { samples: out.pairs, steps: out.batches }));
  result['eval_tokens_per_second'] = Math.round(out.tokens / out.seconds);
  if (c.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    process.stderr.write(`${loaded.summary}\n`);
    const width = Math.max(...Object.keys(result).map((k) => k.length));
    for (const [k, v] of Object.entries(result)) {
      process.stdout.write(`${k.padEnd(width)}  ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(6) : v}\n`);
    }
  }
  return 0;
}
