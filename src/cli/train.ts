// `orpo train`: options -> model + tokenizer + pairs -> the trainer, with the files around it (metrics.jsonl,
// checkpoints, the final model, the report) and the terminal (progress, Ctrl-C).

import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TokenPair } from '../data/collate.js';
import { padTokenIdOf, type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-files.js';
import { readSafetensorsHeader, readTensorF32 } from '../io/safetensors.js';
import { writeFileAtomically } from '../io/atomic-file.js';
import { ADAPTER_WEIGHTS_FILE, peftTensorName, saveAdapter } from '../io/adapter.js';
import { loadModel, readConfigJson, resolveWeightDtype, saveModel } from '../io/hf-model.js';
import { hostKernelsNamed } from '../backend/index.js';
import { modelOnBackend } from '../model/create.js';
import type { AdamW } from '../optim/adamw.js';
import { backendOf, hostDevice, webGpuDevice, type TrainingDevice } from './device.js';
import type { LoraAdapters } from '../lora/adapters.js';
import { attachLoraFromOptions, fusedLossFor, lossHeads, trainableBuffers, trainMemoryPlanText } from '../lora/options.js';
import { parseConfig } from '../model/config.js';
import type { DecoderBase } from '../model/base.js';
import type { CausalLM } from '../model/types.js';
import { Rng } from '../tensor/rng.js';
import { objectiveFromConfig, TRAIN_ALIASES, TRAIN_OPTIONS, validateTrainConfig, type TrainConfig } from '../train/config.js';
import type { TokenLogprobHead } from '../loss/logprob-head.js';
import { modelReference, type ReferenceModel } from '../loss/reference.js';
import { NonFiniteError, train, type LogRecord, type ResumeFrom, type TrainResult, type TrainerState } from '../train/trainer.js';
import type { NamedRange } from '../optim/finite.js';
import { speedMetrics } from '../train/metrics.js';
import { resolveCommandOptions } from './args.js';
import {
  assertFiniteWeights, copyTokenizerFiles, findResumeCheckpoint, loadCheckpoint, readTrainingArgs, pruneCheckpoints, removeCheckpoint,
  removeStaleTemporaries, saveCheckpoint, scanCheckpoints,
} from './checkpoint.js';
import { dataLimitsOf, loadPairs } from './pairs.js';
import { formatDuration, ProgressReporter } from './progress.js';
import { peakRssBytes } from '../train/memory.js';
import { evalName, METRIC as M } from '../loss/metric-names.js';
import { writeReport } from './report-files.js';
import { OptionError } from '../train/options.js';

export const TRAIN_USAGE = `Usage: orpo train --model DIR --dataset FILE --output-dir DIR [options]
       orpo train --config train.yaml [--option value ...]

Fine-tunes a Hugging Face model folder with ORPO on preference pairs (prompt/chosen/rejected), writing
checkpoints, metrics.jsonl, the final model and report.html to output_dir. Option names are TRL's
(snake_case in config files, kebab-case as flags).`;

export interface TrainRunOptions {
  /** called with the starting model before the first step (the demo records its generations) */
  beforeTraining?: (model: DecoderBase, tokenizer: Tokenizer) => void;
  /** extra sections for report.html, from the trained model (the demo adds its generations) */
  reportExtra?: (model: DecoderBase, tokenizer: Tokenizer) => readonly (readonly [string, string])[];
  /** no progress output (the demo's --json) */
  quiet?: boolean;
  /** title of report.html */
  title?: string;
}

export interface TrainRun {
  result: TrainResult;
  model: DecoderBase;
  tokenizer: Tokenizer;
  evalPairs: TokenPair[] | null;
  trainPairs: TokenPair[];
  /** where the steps ran: the host kernels' name, or the GPU adapter */
  backend: string;
}

// options that shape the optimisation; a resumed run with other values continues, but not exactly
const RESUME_MUST_MATCH = [
  'dataset', 'eval_dataset', 'eval_split_ratio', 'method', 'beta', 'completion_only_loss', 'loss_type', 'ref_model', 'precompute_ref_log_probs', 'simpo_gamma', 'sft_scope', 'share_prompt', 'bf16', 'torch_dtype', 'learning_rate', 'num_train_epochs', 'max_steps',
  'per_device_train_batch_size', 'gradient_accumulation_steps', 'lr_scheduler_type', 'warmup_steps', 'warmup_ratio',
  'weight_decay', 'adam_beta1', 'adam_beta2', 'adam_epsilon', 'max_grad_norm', 'max_length', 'max_prompt_length',
  'max_completion_length', 'truncation_mode', 'system_column', 'seed',
] as const satisfies readonly (keyof TrainConfig)[];

/** TRL's eval split: a seeded shuffle, the first ceil(n * ratio) pairs held out. */
export function splitForEval(pairs: readonly TokenPair[], ratio: number, seed: number): { train: TokenPair[]; eval: TokenPair[] } {
  const order = new Rng(seed).shuffle(Array.from({ length: pairs.length }, (_, i) => i));
  const nEval = Math.min(pairs.length - 1, Math.ceil(pairs.length * ratio));
  return { eval: order.slice(0, nEval).map((i) => pairs[i]!), train: order.slice(nEval).map((i) => pairs[i]!) };
}

export async function runTrain(argv: readonly string[]): Promise<number> {
  let c = await resolveCommandOptions('train', TRAIN_USAGE, argv, TRAIN_OPTIONS, { allowConfig: true, aliases: TRAIN_ALIASES });
  if (c === null) return 0;
  if (c.resume !== null && c.model === null && (c.output_dir !== null || c.resume !== 'latest')) {
    // `orpo train --output-dir runs/x --resume`, or `orpo train --resume runs/x/checkpoint-200`: the checkpoint's own
    // options, under any config file and flags; the run's folder is the checkpoint's unless --output-dir says otherwise
    const found = await findResumeCheckpoint(c.resume, c.output_dir ?? '');
    for (const s of found.skipped) process.stderr.write(`skipping ${s.dir}: not a complete checkpoint (${s.why})\n`);
    const dir = found.dir;
    const saved = await readTrainingArgs(dir);
    const values = Object.fromEntries(Object.entries(saved).filter(([k]) => k in TRAIN_OPTIONS && k !== 'resume'));
    values['output_dir'] = dirname(resolve(dir));
    c = (await resolveCommandOptions('train', TRAIN_USAGE, argv, TRAIN_OPTIONS,
      { allowConfig: true, aliases: TRAIN_ALIASES, base: { source: join(dir, 'training_args.json'), values } }))!;
    c.resume = dir;
  }
  validateTrainConfig(c);
  if (c.dry_run) {
    // auto plans the dtype the run would load: the weight files' (their headers only)
    const config = parseConfig(await readConfigJson(c.model!), join(c.model!, 'config.json'));
    const torchDtype = c.lora_r === null ? 'float32' : await resolveWeightDtype(c.model!, config, c.torch_dtype);
    process.stdout.write(`${trainMemoryPlanText(config, { ...c, torch_dtype: torchDtype })}\n`);
    return 0;
  }
  const run = await runTraining(c);
  return run.result.interrupted ? 130 : 0;
}

/** The whole of `orpo train` after option parsing (also used by `orpo demo`). */
export async function runTraining(c: TrainConfig, opts: TrainRunOptions = {}): Promise<TrainRun> {
  const outputDir = c.output_dir!;
  const modelDir = c.model!;
  const reporter = new ProgressReporter();
  const say = (line: string): void => {
    if (opts.quiet !== true) reporter.message(line);
  };
  await mkdir(outputDir, { recursive: true });
  const leftovers = await removeStaleTemporaries(outputDir);
  if (leftovers.length > 0) say(`removed what a killed run left in ${outputDir}: ${leftovers.join(', ')}`);
  if (c.resume === null) await claimOutputDir(outputDir, c.overwrite_output_dir, say);
  // a run in progress has no train_results.json: a stale one would tell readers (orpo compare) that this run finished
  await rm(join(outputDir, 'train_results.json'), { force: true });

  let resumeDir: string | null = null;
  if (c.resume !== null) {
    const found = await findResumeCheckpoint(c.resume, outputDir);
    for (const s of found.skipped) say(`skipping ${s.dir}: not a complete checkpoint (${s.why})`);
    resumeDir = found.dir;
  }
  // a checkpoint holds the whole model, or under LoRA only the adapter (the base comes from --model again)
  const lora = c.lora_r !== null;
  // loadModel refuses weights holding NaN/Inf (a checkpoint's or the starting model's); the adapters are checked below
  const backend = backendOf(c.backend);
  // torch_dtype bfloat16 (or auto on BF16 files) holds a LoRA base in bfloat16; full fine-tuning trains float32
  const weightDtype = lora ? c.torch_dtype : 'float32';
  const model = await loadModel(resumeDir !== null && !lora ? resumeDir : modelDir,
    backend === 'js' || backend === 'native' ? { kernels: hostKernelsNamed(backend), weightDtype } : { weightDtype });
  model.gradientCheckpointing = c.gradient_checkpointing;
  const adapters = attachLoraFromOptions(model, c, c.seed);
  const trainable = trainableBuffers(model, adapters);
  let resume: ResumeFrom | null = null;
  if (resumeDir !== null) {
    const ckpt = await loadCheckpoint(resumeDir, trainable.params.length);
    if (adapters !== null) {
      await readAdapterWeightsInto(adapters, resumeDir);
      assertFiniteWeights(join(resumeDir, ADAPTER_WEIGHTS_FILE), adapters.params, loraLayout(adapters));
      const steps = ckpt.state.extra?.['lora_dropout_steps'];
      if (Array.isArray(steps)) adapters.setDropoutSteps(steps as number[]);
    }
    resume = { state: ckpt.state, m: ckpt.m, v: ckpt.v, optimizerStep: ckpt.optimizerStep };
    say(`resuming from ${resumeDir} (step ${ckpt.state.global_step} of ${ckpt.state.total_steps})`);
    for (const key of RESUME_MUST_MATCH) {
      if (JSON.stringify(ckpt.args[key]) === JSON.stringify(c[key])) continue;
      const was = `${key} was ${JSON.stringify(ckpt.args[key])} in the run that wrote ${resumeDir} but is ${JSON.stringify(c[key])} now`;
      if (key === 'max_steps' || key === 'num_train_epochs') {
        // the step budget is the one change a resume is for: train to the new total (trainer: extendOrShorten)
        reporter.message(`note: ${was}; training continues to the new total, the learning-rate schedule stretched over it.`);
      } else {
        reporter.message(`warning: ${was}; the data order and schedule are the checkpoint's, so the result will not ` +
          'equal either run. Give the original options to continue exactly.');
      }
    }
  }
  // what writeWeights writes is the host copy: the save hook brings the device's weights back first
  const writeWeights = async (dir: string, dtype: 'F32' | 'BF16'): Promise<void> => {
    if (adapters !== null) await saveAdapter(adapters, dir, { baseModelNameOrPath: modelDir, dtype });
    else await saveModel(model, dir, { dtype });
  };
  model.kernels.setThreads(c.threads ?? availableParallelism());
  model.kernels.setMatmulBf16(c.bf16);
  const device = backend === 'webgpu' ? await webGpuDevice(model, adapters) : hostDevice(model, adapters);
  device.kernels.setMatmulBf16(c.bf16);

  const tokenizer = await loadTokenizer(modelDir);
  const padTokenId = padTokenIdOf(tokenizer);
  const limits = dataLimitsOf(c);
  const loaded = await loadPairs(c.dataset!, tokenizer, limits);
  say(loaded.summary);
  let trainPairs = loaded.pairs;
  let evalPairs: TokenPair[] | null = null;
  if (c.eval_dataset !== null) {
    const ev = await loadPairs(c.eval_dataset, tokenizer, limits);
    say(`eval: ${ev.summary}`);
    evalPairs = ev.pairs;
  } else if (c.eval_split_ratio > 0) {
    const split = splitForEval(trainPairs, c.eval_split_ratio, c.seed);
    [trainPairs, evalPairs] = [split.train, split.eval];
    say(`held out ${evalPairs.length} pairs for evaluation (eval_split_ratio ${c.eval_split_ratio})`);
  }

  // metrics.jsonl always equals the log of the run so far: a resumed run rewrites it from the checkpoint's
  // history, dropping records written after that checkpoint by the interrupted run
  const metricsFile = join(outputDir, 'metrics.jsonl');
  writeFileSync(metricsFile, (resume?.state.log_history ?? []).map((r) => `${JSON.stringify(r)}\n`).join(''));

  let stopRequested = false;
  const onSigint = (signal: NodeJS.Signals): void => {
    const name = signal === 'SIGINT' ? 'Ctrl-C' : signal;
    if (stopRequested) {
      reporter.message(`second ${name}: exiting without saving`);
      process.exit(130);
    }
    stopRequested = true;
    reporter.message(`${name}: finishing this step and saving a checkpoint (${name} again to quit at once)`);
  };
  // SIGTERM (a scheduler's preemption, `kill`) gets the same save-and-exit as Ctrl-C
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const args = { ...c };
  const saveCkpt = async (state: TrainerState, optimizer: AdamW): Promise<string> => {
    if (adapters !== null) state.extra = { ...state.extra, lora_dropout_steps: adapters.getDropoutSteps() };
    const dir = await saveCheckpoint({ outputDir, writeWeights: (d) => writeWeights(d, 'F32'), optimizer, state, tokenizerDir: modelDir, args });
    await pruneCheckpoints(outputDir, c.save_total_limit);
    return dir;
  };
  if (resume === null) opts.beforeTraining?.(model, tokenizer);
  const objective = objectiveFromConfig(c);
  const fused = fusedLossFor(c, model.config, Math.max(c.per_device_train_batch_size, c.per_device_eval_batch_size), c.max_length);
  let result: TrainResult;
  // the run over the device's buffers (the host model itself on the CPU backends)
  const trainOn = async <F, I>(d: TrainingDevice<F, I>): Promise<TrainResult> => {
    const heads = lossHeads(d.model, fused);
    const reference = objective.needsReference ? await referenceModelFor(c, d, heads.eval, fused) : null;
    if (reference !== null) say(`reference model: ${reference.description}${c.precompute_ref_log_probs ? ' (log-probs precomputed before the first step)' : ''}`);
    const what = adapters === null ? 'every weight'
      : `LoRA r=${c.lora_r} on ${adapters.layers.length} modules${model.frozen ? ', the base frozen in bfloat16' : ''}`;
    const params = (n: number): string => `${(n / 1e6).toFixed(3)}M`;
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const where = d.onHost ? `${model.kernels.name} kernels, ${plural(model.kernels.getThreads(), 'thread')}` : d.name;
    say(`${objective.method} (${Object.entries(objective.options).map(([k, v]) => `${k} ${v}`).join(', ')}): training ${modelDir} (${model.config.modelType}, ${params(model.parameterCount)} parameters; ${what}, ` +
      `${params(trainable.params.length)} trainable) on ${plural(trainPairs.length, 'pair')} with ${where}`);
    return train(d.model, { train: trainPairs, eval: evalPairs, padTokenId }, c, {
      log: (r: LogRecord) => {
        appendFileSync(metricsFile, `${JSON.stringify(r)}\n`);
        if (opts.quiet !== true) reporter.log(r);
      },
      progress: (p) => {
        if (opts.quiet !== true) reporter.progress(p);
      },
      evalProgress: (done, total) => {
        if (opts.quiet !== true) reporter.evaluating(done, total);
      },
      shouldStop: () => stopRequested,
      save: async (kind, state, optimizer) => {
        await d.syncToHost();
        if (kind === 'final') {
          await writeWeights(outputDir, c.save_dtype === 'bfloat16' ? 'BF16' : 'F32');
          await copyTokenizerFiles(modelDir, outputDir);
          // the run's settings travel with the final model too, for orpo eval (and a reader) to use
          await writeFileAtomically(join(outputDir, 'training_args.json'), JSON.stringify(args, null, 2) + '\n');
          return;
        }
        const dir = await saveCkpt(state, await d.hostOptimizer(optimizer));
        say(`saved ${dir}`);
      },
    }, resume, {
      trainable: trainableBuffers(d.model, d.adapters), heads, objective, reference,
      layout: adapters === null ? model.layout : loraLayout(adapters),
      ...(d.adapters === null ? {} : { setTraining: (on: boolean) => void (d.adapters!.training = on) }),
    });
  };
  try {
    result = await trainOn(device);
  } catch (e) {
    if (e instanceof NonFiniteError) throw new Error(`${e.message}\n${await lastGoodCheckpointAdvice(outputDir, e, adapters !== null)}`);
    throw e;
  } finally {
    model.kernels.setMatmulBf16(false); // process-wide: the next run in this process starts from float32
    device.kernels.setMatmulBf16(false);
    device.release();
    reporter.finish();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }

  const summary = summarise(c, result, trainPairs.length, evalPairs?.length ?? 0, model);
  await writeFileAtomically(join(outputDir, 'train_results.json'), JSON.stringify(summary, null, 2) + '\n');
  if (c.report) {
    const report = await writeReport(outputDir, result.state.log_history, {
      title: opts.title ?? c.run_name ?? `${objective.method.toUpperCase()} run: ${outputDir}`,
      subtitle: `${modelDir} fine-tuned with ${objective.method.toUpperCase()} (${Object.entries(objective.options).map(([k, v]) => `${k} = ${v}`).join(', ')}) on ${c.dataset}.`,
      summary: Object.entries(summary).map(([k, v]) => [k, formatSummaryValue(v)] as const),
      firstEval: result.firstEval, lastEval: result.lastEval, config: args, extra: opts.reportExtra?.(model, tokenizer),
    });
    say(`report: ${report.html}`);
  }
  if (result.interrupted) say(`interrupted at step ${result.state.global_step}; continue with --resume`);
  else if (opts.quiet !== true) printSummary(summary, reporter);
  return { result, model, tokenizer, evalPairs, trainPairs, backend: device.name };
}

/**
 * DPO's reference: --ref-model DIR; else the starting model, frozen: under LoRA the policy itself with its adapters
 * switched off (PEFT's disable_adapter(), no second copy of the weights), otherwise one frozen copy loaded from
 * --model (also on resume: the reference stays the initial policy).
 */
async function referenceModelFor<F, I>(c: TrainConfig, d: TrainingDevice<F, I>, evalHead: TokenLogprobHead<F, I>,
  fused: boolean): Promise<ReferenceModel> {
  if (c.ref_model === null && d.adapters !== null) {
    return modelReference(d.model, { head: evalHead, sharePrompt: c.share_prompt, adapters: d.adapters, description: `${c.model} with the LoRA adapters switched off (no second copy)` });
  }
  if (c.ref_model === null && c.precompute_ref_log_probs) {
    // the trainer runs the reference only before the first step, when the policy still is the starting model (as
    // TRL does without a ref_model): no copy at all
    return modelReference(d.model, { head: evalHead, sharePrompt: c.share_prompt, description: `${c.model} itself, before the first step (no copy)` });
  }
  const dir = c.ref_model ?? c.model!;
  const description = c.ref_model === null ? `a frozen copy of ${dir}` : dir;
  const ref = await loadReferenceModel(dir, d.model);
  if (d.kernels === (ref.kernels as unknown)) return frozenReference(ref as unknown as DecoderBase<F, I>, fused, c.share_prompt, description);
  return frozenReference(modelOnBackend(ref, d.kernels), fused, c.share_prompt, description);
}

/** A reference model loaded from a folder (DPO's --ref-model, or a copy of the starting model), forward only. */
export async function loadFrozenReference(dir: string, policy: CausalLM, fused: boolean, sharePrompt: boolean, description: string): Promise<ReferenceModel> {
  return frozenReference(await loadReferenceModel(dir, policy), fused, sharePrompt, description);
}

/** a reference's weights from `dir`, on the host, refused unless they share the policy's vocabulary */
async function loadReferenceModel<F, I>(dir: string, policy: CausalLM<F, I>): Promise<DecoderBase> {
  const ref = await loadModel(dir);
  if (ref.config.vocabSize !== policy.config.vocabSize) {
    throw new Error(`--ref-model ${dir}: vocabulary of ${ref.config.vocabSize} tokens, the policy has ${policy.config.vocabSize}; the reference must share the policy's tokenizer`);
  }
  return ref;
}

function frozenReference<F, I>(ref: DecoderBase<F, I>, fused: boolean, sharePrompt: boolean, description: string): ReferenceModel {
  ref.trainBase = false;
  // a reference never runs backward: checkpointing's one shared layer slot is all the activations it needs to keep
  ref.gradientCheckpointing = true;
  return modelReference(ref, { head: lossHeads(ref, fused).eval, sharePrompt, description });
}

/** A checkpoint's adapter weights (PEFT names) into freshly attached adapters of the same settings. */
async function readAdapterWeightsInto(adapters: LoraAdapters, dir: string): Promise<void> {
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  const header = await readSafetensorsHeader(file);
  for (const l of adapters.layers) {
    for (const [factor, view] of [['A', adapters.A(l.module)], ['B', adapters.B(l.module)]] as const) {
      const info = header.tensors.get(peftTensorName(l.module, factor));
      if (info === undefined || info.shape.reduce((a, b) => a * b, 1) !== view.length) {
        throw new Error(`${file}: no ${factor} factor of ${view.length} values for ${l.module}; resume with the LoRA options of the run that wrote it`);
      }
      await readTensorF32(info, view);
    }
  }
}

/**
 * A run from step 0 takes output_dir only when no earlier run's checkpoints are in it: they would sit beside this
 * run's, and a later --resume (the newest checkpoint) could continue the other run. transformers' example scripts
 * refuse such a folder unless overwrite_output_dir is set (the Trainer itself only ever adds checkpoints), and with it
 * this run deletes them first, as the option's name says. A folder with a final model only (save_steps 0, the demo)
 * is taken: the final files are replaced at the end and nothing resumes from them.
 */
async function claimOutputDir(outputDir: string, overwrite: boolean, say: (line: string) => void): Promise<void> {
  const { complete, incomplete } = await scanCheckpoints(outputDir);
  const old = [...complete, ...incomplete].sort((a, b) => a.step - b.step);
  if (old.length === 0) return;
  const names = old.map((x) => `checkpoint-${x.step}`).join(', ');
  if (!overwrite) {
    throw new OptionError(`${outputDir} already holds ${names} from an earlier run: this run would mix its checkpoints with them, and a ` +
      'later --resume could continue the other run. Continue that run with --resume, train into another --output-dir, or give ' +
      '--overwrite-output-dir to delete them and start again (transformers\' overwrite_output_dir)');
  }
  for (const x of old) await removeCheckpoint(outputDir, x.dir);
  say(`overwrite_output_dir: deleted ${names} of an earlier run in ${outputDir}`);
}

/** The adapters' A and B factors by their PEFT names, for messages about their values. */
function loraLayout(adapters: LoraAdapters): NamedRange[] {
  return adapters.layers.flatMap((l) => [
    { name: peftTensorName(l.module, 'A'), offset: l.aOffset, size: adapters.A(l.module).length },
    { name: peftTensorName(l.module, 'B'), offset: l.bOffset, size: adapters.B(l.module).length },
  ]);
}

/**
 * Which checkpoint to go back to after a divergence: the newest written at or before the error's last good step.
 * Resuming it would repeat the divergence (its learning-rate schedule is part of its state, as transformers' scheduler
 * state is), so the advice is a new run from its weights.
 */
async function lastGoodCheckpointAdvice(outputDir: string, e: NonFiniteError, lora: boolean): Promise<string> {
  const complete = (await scanCheckpoints(outputDir)).complete;
  const good = complete.filter((x) => x.step <= e.lastGoodStep).pop();
  const suspect = complete.filter((x) => x.step > e.lastGoodStep && x.step < e.step);
  const lines = [good === undefined
    ? `No checkpoint in ${outputDir} predates the divergence: start again with a lower learning_rate.`
    : `The last good checkpoint is ${good.dir} (step ${good.step}, intact). Resuming it repeats the same steps (its learning-rate ` +
      `schedule is saved with it); train on from its weights with a lower learning_rate instead: ${lora
        ? `orpo merge --adapter ${good.dir} --base <base model> --out DIR, then orpo train --model DIR`
        : `orpo train --model ${good.dir}`} --learning-rate <lower> --output-dir <new folder>.`];
  if (suspect.length > 0) {
    lines.push(`${suspect.map((x) => x.dir).join(', ')} ${suspect.length === 1 ? 'holds' : 'hold'} the finite weights the diverged step ` +
      'started from: resuming from there diverges again.');
  }
  return lines.join('\n');
}

export type SummaryValue = number | string | boolean;

/**
 * train_results.json in transformers' layout (trainer.save_metrics('train', ...) and its examples' train_samples /
 * eval_samples): train_loss is the mean of every optimizer step's loss since step 0 (transformers divides its running
 * sum by global_step; the sum is kept in checkpoints, so a resumed run reports the whole run's mean);
 * train_runtime, train_samples_per_second and train_steps_per_second are this session's wall time (steps, evaluations
 * and checkpoint saves) as transformers measures it; train_tokens_per_second is measured over train_step_runtime, the
 * time inside optimizer steps only, so it matches the step lines. The final evaluation's metrics keep their names
 * (eval_loss, ..., eval_runtime), the one before the first step gets `initial_`; the rest are orpo-ts's own.
 */
function summarise(c: TrainConfig, r: TrainResult, trainPairs: number, evalPairs: number, model: DecoderBase): Record<string, SummaryValue> {
  const state = r.state;
  const s: Record<string, SummaryValue> = {
    output_dir: c.output_dir!,
    method: c.method,
    epoch: Number((state.epoch_index + state.pair_offset / state.train_pairs).toPrecision(8)),
    global_step: state.global_step,
    max_steps: state.total_steps,
    ...(state.global_step > 0 ? { train_loss: Number((state.train_loss_sum / state.global_step).toPrecision(8)) } : {}),
    ...speedMetrics('train', r.seconds, { samples: r.samples, steps: r.steps }),
    train_step_runtime: Number(r.stepSeconds.toFixed(4)),
    train_tokens_per_second: Math.round(r.tokens / Math.max(r.stepSeconds, 1e-9)),
    train_samples: trainPairs,
    eval_samples: evalPairs,
    num_input_tokens_seen: state.tokens_seen,
    parameters: model.parameterCount,
    forward_tokens: r.forwardTokens,
    reference_forward_tokens: r.referenceTokens,
    peak_rss_mb: Math.round(peakRssBytes() / 2 ** 20),
    interrupted: r.interrupted,
  };
  const evals = state.log_history.filter((x) => evalName(M.loss) in x);
  const initial = evals.find((x) => x['step'] === 0);
  const final = evals[evals.length - 1];
  const shown = [M.loss, M.rewardsAccuracies, M.rewardsMargins, M.meanLogpAccuracy, M.meanLogpMargin].map(evalName);
  if (initial !== undefined && initial !== final) for (const k of shown) if (k in initial) s[`initial_${k}`] = initial[k]!;
  if (final !== undefined) {
    for (const k of [...shown, 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']) if (k in final) s[k] = final[k]!;
  }
  return s;
}

/** a summary value for the report: counts exactly (a 9,780,928-parameter model is not 9780930), measurements to 6 digits */
export function formatSummaryValue(v: SummaryValue): string {
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

// what the bare numbers of the summary do not say
const SUMMARY_NOTES: Readonly<Record<string, string>> = {
  train_runtime: 'this session, with evaluations and checkpoint saves',
  train_step_runtime: 'inside optimizer steps only',
  train_tokens_per_second: 'over train_step_runtime, as the step lines',
};

function printSummary(s: Record<string, SummaryValue>, reporter: ProgressReporter): void {
  const width = Math.max(...Object.keys(s).map((k) => k.length));
  reporter.message('summary:');
  for (const [k, v] of Object.entries(s)) {
    const extras = [k.endsWith('_runtime') ? formatDuration(Number(v)) : undefined, SUMMARY_NOTES[k]].filter((x) => x !== undefined);
    reporter.message(`  ${k.padEnd(width)}  ${String(v)}${extras.length > 0 ? ` (${extras.join('; ')})` : ''}`);
  }
}
