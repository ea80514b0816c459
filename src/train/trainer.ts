// The ORPO training loop: seeded epoch order, micro-batches accumulated into one optimizer step with
// whole-step denominators (so accumulation gives exactly the larger batch's update), gradient clipping,
// AdamW, the learning-rate schedule, periodic logging and evaluation, and checkpoints whose state lets a
// resumed run reproduce the uninterrupted one bit for bit.
//
// No files, no argv, no terminal: the caller supplies hooks (src/cli writes metrics.jsonl, checkpoints and
// the progress bar). The loop yields to the event loop once per step so a Ctrl-C handler can ask it to stop.

import { collatePairs, type PackedBatch, type TokenPair } from '../data/collate.js';
import { groupOrderByLength } from '../data/batching.js';
import type { TokenLogprobHead } from '../loss/logprob-head.js';
import { METRIC } from '../loss/metric-names.js';
import { addUnits, ZERO_UNITS, type Objective, type ReferenceLogps } from '../loss/objective.js';
import { objectiveStep } from '../loss/preference.js';
import type { ReferenceModel } from '../loss/reference.js';
import { modelTrainable, type TrainableBuffers } from '../lora/options.js';
import type { CausalLM } from '../model/types.js';
import { AdamW, clipGradNorm } from '../optim/adamw.js';
import { allFinite, allFiniteNonNegative, allFiniteOn, describeProblems, tensorProblems, type NamedRange, type TensorProblem } from '../optim/finite.js';
import { learningRateAt, resolveWarmupSteps, type ScheduleConfig } from '../optim/schedule.js';
import { checkpointInterval, evaluationPlan, objectiveFromConfig, type TrainConfig } from './config.js';
import { evaluatePairs } from './evaluate.js';
import { nextTask } from './next-task.js';
import { MetricAccumulator, speedMetrics, type AccumulatorJSON } from './metrics.js';
import { Rng } from '../tensor/rng.js';

/** One metrics.jsonl record: training records carry TRL's names, evaluation records the `eval_` prefix. */
export type LogRecord = Record<string, number>;

/** Everything besides weights and optimizer moments that a resumed run needs (trainer_state.json). */
export interface TrainerState {
  global_step: number;
  total_steps: number;
  /** epochs started so far minus one, and the next pair's position in this epoch's order */
  epoch_index: number;
  pair_offset: number;
  /** this epoch's order of the training pairs (indices) */
  order: number[];
  /** the shuffling generator's state after drawing `order` */
  rng: number[];
  /** metrics of the steps since the last training log record */
  window: AccumulatorJSON & { grad_norm_sum: number; steps: number; tokens: number; seconds: number };
  log_history: LogRecord[];
  /** sum of every optimizer step's loss since step 0, so train_loss (their mean, as transformers reports it) survives a resume */
  train_loss_sum: number;
  /** real (unpadded) tokens of the training steps since step 0 (transformers' num_input_tokens_seen) */
  tokens_seen: number;
  train_pairs: number;
  schedule: ScheduleConfig;
  /** state of parts the caller plugs in (e.g. LoRA dropout counters), saved and restored by the caller */
  extra?: Record<string, unknown>;
  /**
   * precompute_ref_log_probs: the reference's summed response log-probs of every training pair, by the pair's index
   * in the training set, computed once before the first step and kept so a resumed run uses the very same values
   */
  ref_logps?: { chosen: number[]; rejected: number[] };
  /** the same for the evaluation pairs, in their order, so that no evaluation needs the reference model again */
  eval_ref_logps?: { chosen: number[]; rejected: number[] };
}

/** What a run trains and how it computes the loss; default: every parameter, the unfused head, the config's objective. */
export interface TrainSetup<F = Float32Array, I = Int32Array> {
  /** the training objective (default: objectiveFromConfig(c)) */
  objective?: Objective;
  /**
   * the objective's reference model (DPO): on the fly, or with precompute_ref_log_probs run once over the training
   * and evaluation pairs before the first step and never again (so it may be the starting policy itself)
   */
  reference?: ReferenceModel | null;
  trainable?: TrainableBuffers<F>;
  heads?: { train: TokenLogprobHead<F, I>; eval: TokenLogprobHead<F, I> };
  /** dropout on while training, off while evaluating (PEFT's model.train()/model.eval()) */
  setTraining?: (on: boolean) => void;
  /**
   * names of the trainable tensors in the trainable buffer, for messages about non-finite values (default: the
   * model's layout when every weight trains; under LoRA the caller passes the adapters' A and B factors)
   */
  layout?: readonly NamedRange[];
}

export interface Progress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  margin: number;
  accuracy: number;
  tokensPerSecond: number;
  /** seconds left at the current pace */
  eta: number;
}

export interface TrainerHooks<F = Float32Array> {
  /** a training or evaluation record (already in state.log_history) */
  log?(record: LogRecord): void;
  /** after every optimizer step */
  progress?(p: Progress): void;
  /** after every evaluation batch: pairs evaluated so far of the held-out set's */
  evalProgress?(done: number, total: number): void;
  /** writes a checkpoint (weights + optimizer + state); `final` = the end of the run */
  save?(kind: 'checkpoint' | 'final' | 'interrupt', state: TrainerState, optimizer: AdamW<F>): Promise<void>;
  /** polled after every step: true = save a checkpoint and return (Ctrl-C) */
  shouldStop?(): boolean;
}

export interface ResumeFrom {
  state: TrainerState;
  m: Float32Array;
  v: Float32Array;
  optimizerStep: number;
}

export interface TrainResult {
  state: TrainerState;
  interrupted: boolean;
  /** wall time of this session's training loop: steps, evaluations and checkpoint saves (transformers' train_runtime) */
  seconds: number;
  /** of which inside optimizer steps (forward, backward, clipping, update) only: what tokens per second are measured over */
  stepSeconds: number;
  /** optimizer steps and training pairs of this session (a resumed run counts from its checkpoint) */
  steps: number;
  samples: number;
  /** real tokens of this session's training steps */
  tokens: number;
  firstEval: LogRecord | null;
  lastEval: LogRecord | null;
  lastTrain: LogRecord | null;
  /** real tokens run through the policy (training steps and evaluations) and through the reference model */
  forwardTokens: number;
  referenceTokens: number;
}

/** What a diverged step went wrong in. */
export type Divergence = 'loss' | 'gradient norm' | 'zero gradient' | 'weights' | 'optimizer state';

/**
 * The run diverged: a step's loss or gradient norm is NaN/Inf, its gradients vanished exactly (the activations
 * overflowed float32 and a normalisation turned the overflow into zeros), or the weights or AdamW moments about to be
 * saved hold NaN/Inf. The run stops and nothing from this step is written. `lastGoodStep` is the newest step whose
 * weights are known to train on: a failure inside step s comes from the weights after step s-1, so those are suspect
 * and step s-2's are the last that gave a finite step; a failure found in the weights after step s leaves step s-1's.
 */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
  constructor(readonly step: number, readonly divergence: Divergence, detail: string, readonly lastGoodStep: number) {
    super(`training diverged at step ${step}: ${detail}. Nothing from this step was written; lower learning_rate (or check ` +
      'the data) and start again, from the weights of a checkpoint written before the divergence if there is one.');
  }
}

/** The loss below which an exactly zero gradient can be float32 underflow rather than a dead model (see the check after clipping). */
const ZERO_GRADIENT_LOSS_FLOOR = 1e-6;

export function stepsPerEpoch(trainPairs: number, c: Pick<TrainConfig, 'per_device_train_batch_size' | 'gradient_accumulation_steps'>): number {
  return Math.ceil(trainPairs / (c.per_device_train_batch_size * c.gradient_accumulation_steps));
}

export function totalStepsOf(trainPairs: number, c: TrainConfig): number {
  if (c.max_steps > 0) return c.max_steps;
  return Math.max(1, Math.ceil(c.num_train_epochs * stepsPerEpoch(trainPairs, c)));
}

/** One epoch's order of the training pairs: shuffled, then grouped by length when group_by_length is on. */
function epochOrder(rng: Rng, trainPairs: number, c: Pick<TrainConfig, 'group_by_length' | 'per_device_train_batch_size'>,
  pairs: readonly TokenPair[] | undefined): number[] {
  const order = rng.shuffle(Array.from({ length: trainPairs }, (_, i) => i));
  if (!c.group_by_length || pairs === undefined) return order;
  return groupOrderByLength(order, pairs, c.per_device_train_batch_size);
}

export function initialState(trainPairs: number, c: TrainConfig, pairs?: readonly TokenPair[]): TrainerState {
  const total = totalStepsOf(trainPairs, c);
  const rng = new Rng(c.seed);
  const order = epochOrder(rng, trainPairs, c, pairs);
  return {
    global_step: 0,
    total_steps: total,
    epoch_index: 0,
    pair_offset: 0,
    order,
    rng: rng.getState(),
    window: { sums: {}, weights: {}, grad_norm_sum: 0, steps: 0, tokens: 0, seconds: 0 },
    log_history: [],
    train_loss_sum: 0,
    tokens_seen: 0,
    train_pairs: trainPairs,
    schedule: {
      type: c.lr_scheduler_type, baseLr: c.learning_rate, totalSteps: total,
      warmupSteps: resolveWarmupSteps(total, c.warmup_steps, c.warmup_ratio),
    },
  };
}

/**
 * A resumed run whose max_steps / num_train_epochs give another total: train to the new total, the learning-rate
 * schedule stretched or shrunk over it (warm-up recomputed), as transformers' Trainer rebuilds its scheduler for the
 * new num_training_steps. A total at or below the steps already done ends the run at once.
 */
function extendOrShorten(state: TrainerState, total: number, c: Pick<TrainConfig, 'warmup_steps' | 'warmup_ratio'>): void {
  if (total === state.total_steps) return;
  state.total_steps = Math.max(total, state.global_step);
  state.schedule = { ...state.schedule, totalSteps: total, warmupSteps: resolveWarmupSteps(total, c.warmup_steps, c.warmup_ratio) };
}

/** The pairs of the next optimizer step; advances the epoch (reshuffling with the saved generator) when done. */
function takeStepPairs(state: TrainerState, pairsPerStep: number, c: TrainConfig, pairs: readonly TokenPair[]): number[] {
  if (state.pair_offset >= state.order.length) {
    const rng = rngFrom(state.rng);
    state.order = epochOrder(rng, state.train_pairs, c, pairs);
    state.rng = rng.getState();
    state.epoch_index += 1;
    state.pair_offset = 0;
  }
  const picked = state.order.slice(state.pair_offset, state.pair_offset + pairsPerStep);
  state.pair_offset += picked.length;
  return picked;
}

const round = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(8)) : x);

export async function train<F = Float32Array, I = Int32Array>(
  model: CausalLM<F, I>,
  data: { train: readonly TokenPair[]; eval: readonly TokenPair[] | null; padTokenId: number },
  c: TrainConfig,
  hooks: TrainerHooks<F> = {},
  resume: ResumeFrom | null = null,
  setup: TrainSetup<F, I> = {},
): Promise<TrainResult> {
  const k = model.kernels;
  const trainable = setup.trainable ?? modelTrainable(model);
  const heads = setup.heads === undefined ? {} : { train: { head: setup.heads.train }, eval: { head: setup.heads.eval } };
  if (data.train.length === 0) throw new Error('train: the training set is empty');
  const state = resume?.state ?? initialState(data.train.length, c, data.train);
  if (state.train_pairs !== data.train.length) {
    throw new Error(`resume: the checkpoint was trained on ${state.train_pairs} pairs but the dataset now has ${data.train.length}; ` +
      'resume needs the same data and options');
  }
  if (resume !== null) extendOrShorten(state, totalStepsOf(data.train.length, c), c);
  const optimizer = new AdamW<F>(trainable.size, {
    lr: c.learning_rate, beta1: c.adam_beta1, beta2: c.adam_beta2, eps: c.adam_epsilon, weightDecay: c.weight_decay,
  }, model.kernels);
  const layout = setup.layout ?? (setup.trainable === undefined ? model.layout : [{ name: 'trainable parameters', offset: 0, size: trainable.size }]);
  if (resume !== null) {
    // a checkpoint's moments are checked where they enter: NaN or a negative second moment would poison every later step
    const problems = momentProblems(resume.m, resume.v, layout);
    if (problems.length > 0) throw new Error(`resume: the checkpoint's AdamW moments are corrupt: ${describeProblems(problems)}; resume from another checkpoint`);
    k.upload(optimizer.m, resume.m);
    k.upload(optimizer.v, resume.v);
    optimizer.step = resume.optimizerStep;
  }
  const objective = setup.objective ?? objectiveFromConfig(c);
  const reference = setup.reference ?? null;
  if (objective.needsReference && reference === null) throw new Error(`train: ${objective.method} needs a reference model`);
  const sharePrompt = c.share_prompt;
  const bs = c.per_device_train_batch_size;
  const pairsPerStep = bs * c.gradient_accumulation_steps;
  const epochOf = (): number => round(state.epoch_index + state.pair_offset / state.train_pairs);
  const result: TrainResult = {
    state, interrupted: false, seconds: 0, stepSeconds: 0, steps: 0, samples: 0, tokens: 0, firstEval: null, lastEval: null, lastTrain: null,
    forwardTokens: 0, referenceTokens: 0,
  };
  /** a divergence inside step `step`, naming the tensors that hold non-finite values (looked for only now, off the hot path) */
  const diverged = async (step: number, divergence: Divergence, what: string): Promise<NonFiniteError> => {
    const weights = tensorProblems(await k.download(trainable.params), layout);
    const grads = divergence === 'gradient norm' ? tensorProblems(await k.download(trainable.grads), layout) : [];
    const where = weights.length > 0 ? `; the weights it started from already hold NaN/Inf: ${describeProblems(weights)}`
      : grads.length > 0 ? `; non-finite gradients in ${describeProblems(grads)}` : '';
    return new NonFiniteError(step, divergence, `${what}${where}`, step - 2);
  };
  /** the save hook, given only numbers that may be written: nothing non-finite ever reaches a file */
  const save = async (kind: 'checkpoint' | 'final' | 'interrupt'): Promise<void> => {
    if (hooks.save === undefined) return;
    const step = state.global_step;
    if (!await allFiniteOn(k, trainable.params)) {
      throw new NonFiniteError(step, 'weights', `the weights after step ${step} hold NaN/Inf: ${describeProblems(tensorProblems(await k.download(trainable.params), layout))}`, step - 1);
    }
    // AdamW keeps exp_avg_sq >= 0 by construction (β2·v + (1-β2)·g²): finite is all there is to check before writing
    const moments = await allFiniteOn(k, optimizer.m) && await allFiniteOn(k, optimizer.v) ? []
      : momentProblems(await k.download(optimizer.m), await k.download(optimizer.v), layout);
    if (moments.length > 0) throw new NonFiniteError(step, 'optimizer state', `the AdamW moments after step ${step} are corrupt: ${describeProblems(moments)}`, step - 1);
    await hooks.save(kind, state, optimizer);
  };
  const logRecord = (record: LogRecord): void => {
    state.log_history.push(record);
    hooks.log?.(record);
  };
  const runEval = async (): Promise<void> => {
    if (data.eval === null || data.eval.length === 0) return;
    setup.setTraining?.(false);
    const pre = state.eval_ref_logps;
    const out = await evaluatePairs(model, data.eval, {
      objective, sharePrompt, ...heads.eval, batchSize: c.per_device_eval_batch_size, padTokenId: data.padTokenId, onProgress: hooks.evalProgress,
      reference: pre === undefined ? reference : { chosen: Float64Array.from(pre.chosen), rejected: Float64Array.from(pre.rejected) },
    });
    setup.setTraining?.(true);
    result.forwardTokens += out.tokens;
    const record: LogRecord = { step: state.global_step, epoch: epochOf() };
    for (const [name, value] of Object.entries(out.metrics)) record[`eval_${name}`] = round(value);
    // transformers' evaluate() logs its timing with the metrics: runtime, pairs and batches per second
    Object.assign(record, speedMetrics('eval', out.seconds, { samples: out.pairs, steps: out.batches }));
    logRecord(record);
    result.firstEval ??= record;
    result.lastEval = record;
  };
  // eval_strategy / save_strategy / eval_on_start (transformers' rules; an epoch is whole optimizer steps here)
  const epochSteps = stepsPerEpoch(data.train.length, c);
  const evalPlan = evaluationPlan(c, epochSteps);
  const saveEvery = checkpointInterval(c, epochSteps);
  const referenceOf = (picked: readonly number[]): ReferenceLogps | ReferenceModel | null => {
    if (!objective.needsReference) return null;
    const pre = state.ref_logps;
    if (pre === undefined) return reference;
    return { chosen: Float64Array.from(picked, (k) => pre.chosen[k]!), rejected: Float64Array.from(picked, (k) => pre.rejected[k]!) };
  };

  setup.setTraining?.(true);
  if (state.global_step === 0 && evalPlan.atStart) await runEval();
  const started = performance.now();
  // precompute_ref_log_probs: one pass of the reference over the training set before the first step (counted in the
  // run's time, as TRL's train_runtime counts it)
  if (objective.needsReference && c.precompute_ref_log_probs && state.ref_logps === undefined) {
    // the reference may be the starting policy itself: it must not run once the policy has moved
    if (state.global_step > 0) throw new Error(`resume: the checkpoint at step ${state.global_step} holds no precomputed reference log-probs; resume it without --precompute-ref-log-probs`);
    state.ref_logps = await precomputeReference(reference!, data.train, c.per_device_eval_batch_size, data.padTokenId);
    if (data.eval !== null && data.eval.length > 0) state.eval_ref_logps = await precomputeReference(reference!, data.eval, c.per_device_eval_batch_size, data.padTokenId);
  }
  for (const [what, pre, pairs] of [['training', state.ref_logps, data.train], ['evaluation', state.eval_ref_logps, data.eval]] as const) {
    if (pre !== undefined && (pre.chosen.length !== pairs?.length || pre.rejected.length !== pairs.length)) {
      throw new Error(`resume: the checkpoint holds precomputed reference log-probs of ${pre.chosen.length} ${what} pairs, the data has ${pairs?.length ?? 0}; resume needs the same data`);
    }
  }
  let window = MetricAccumulator.fromJSON(objective, state.window);

  while (state.global_step < state.total_steps) {
    const stepStart = performance.now();
    const picked = takeStepPairs(state, pairsPerStep, c, data.train);
    const micro: { batch: PackedBatch; picked: number[] }[] = [];
    for (let i = 0; i < picked.length; i += bs) {
      const part = picked.slice(i, i + bs);
      micro.push({ batch: collatePairs(part.map((k) => data.train[k]!), data.padTokenId), picked: part });
    }
    // whole-step units: e.g. ORPO's NLL is a mean over every chosen token of the step, its odds-ratio term a mean
    // over every pair, so k micro-batches of n pairs give the update of one batch of k*n pairs
    const units = micro.map((m) => objective.units(m.batch));
    const stepUnits = units.reduce(addUnits, ZERO_UNITS);
    const stepStats = new MetricAccumulator(objective);
    trainable.zeroGrad();
    let tokens = 0;
    for (const [i, m] of micro.entries()) {
      const out = await objectiveStep(model, m.batch, objective, { ...heads.train, sharePrompt, stepUnits, reference: referenceOf(m.picked) });
      if (!Number.isFinite(out.loss)) throw await diverged(state.global_step + 1, 'loss', `the loss is ${out.loss}`);
      stepStats.add(out.metrics, units[i]!);
      tokens += m.batch.tokens;
      result.forwardTokens += out.tokens;
    }
    const gradNorm = await clipGradNorm(trainable.grads, c.max_grad_norm > 0 ? c.max_grad_norm : Infinity, k);
    const stepMetrics = stepStats.result();
    const stepLoss = stepMetrics[METRIC.loss]!;
    if (!Number.isFinite(gradNorm)) throw await diverged(state.global_step + 1, 'gradient norm', `the gradient norm is ${gradNorm}`);
    // every objective's gradient is at least of the loss's order while the loss is far above float32's underflow, so
    // an exactly zero gradient with such a loss means an activation overflowed (x² = Inf in a norm gives 0 * x)
    if (gradNorm === 0 && stepLoss > ZERO_GRADIENT_LOSS_FLOOR) {
      throw await diverged(state.global_step + 1, 'zero gradient', `every gradient is exactly 0 while the loss is ${round(stepLoss)}: the activations ` +
        'overflowed float32 and the model can no longer learn');
    }
    const lr = learningRateAt(state.schedule, state.global_step);
    optimizer.update(trainable.params, trainable.grads, lr);
    state.global_step += 1;

    const seconds = (performance.now() - stepStart) / 1000;
    result.stepSeconds += seconds;
    result.steps += 1;
    result.samples += picked.length;
    state.train_loss_sum += stepLoss;
    state.tokens_seen += tokens;
    window.add(stepMetrics, stepUnits);
    state.window = { ...window.toJSON(), grad_norm_sum: state.window.grad_norm_sum + gradNorm, steps: state.window.steps + 1,
      tokens: state.window.tokens + tokens, seconds: state.window.seconds + seconds };
    result.tokens += tokens;
    const elapsed = (performance.now() - started) / 1000;
    const stepsDone = resume === null ? state.global_step : state.global_step - resume.state.global_step;
    hooks.progress?.({
      step: state.global_step, totalSteps: state.total_steps, epoch: epochOf(), loss: stepMetrics[METRIC.loss]!,
      margin: stepMetrics[METRIC.rewardsMargins] ?? NaN, accuracy: stepMetrics[METRIC.rewardsAccuracies] ?? stepMetrics[METRIC.meanTokenAccuracy] ?? NaN,
      tokensPerSecond: result.tokens / elapsed, eta: (elapsed / stepsDone) * (state.total_steps - state.global_step),
    });

    const last = state.global_step === state.total_steps;
    if (state.global_step % c.logging_steps === 0 || last || (c.logging_first_step && state.global_step === 1)) {
      const w = state.window;
      const record: LogRecord = {
        step: state.global_step, epoch: epochOf(), learning_rate: lr, grad_norm: round(w.grad_norm_sum / w.steps),
        tokens_per_second: Math.round(w.tokens / w.seconds),
      };
      for (const [name, value] of Object.entries(window.result())) record[name] = round(value);
      logRecord(record);
      result.lastTrain = record;
      window = new MetricAccumulator(objective);
      state.window = { ...window.toJSON(), grad_norm_sum: 0, steps: 0, tokens: 0, seconds: 0 };
    }
    if ((evalPlan.every > 0 && state.global_step % evalPlan.every === 0) || (last && evalPlan.atEnd)) await runEval();
    if (last) {
      // the last step is always checkpointed (transformers' Trainer saves at the end too), so a resume with a
      // larger max_steps continues from here instead of redoing the steps after the last periodic checkpoint
      if (saveEvery > 0) await save('checkpoint');
      break;
    }
    if (hooks.shouldStop?.() === true) {
      await save('interrupt');
      result.interrupted = true;
      break;
    }
    if (saveEvery > 0 && state.global_step % saveEvery === 0) await save('checkpoint');
    // let signal handlers run between steps
    await nextTask();
  }
  result.referenceTokens = reference?.tokens ?? 0;
  setup.setTraining?.(false);
  result.seconds = (performance.now() - started) / 1000;
  if (!result.interrupted) await save('final');
  return result;
}

/** precompute_ref_log_probs: the reference's summed response log-probs of every training pair, in dataset order */
async function precomputeReference(reference: ReferenceModel, pairs: readonly TokenPair[], batchSize: number, padTokenId: number): Promise<{ chosen: number[]; rejected: number[] }> {
  const chosen: number[] = [];
  const rejected: number[] = [];
  for (let start = 0; start < pairs.length; start += batchSize) {
    const r = await reference.logps(collatePairs(pairs.slice(start, start + batchSize), padTokenId));
    chosen.push(...r.chosen);
    rejected.push(...r.rejected);
  }
  return { chosen, rejected };
}

/**
 * AdamW's moments by tensor: exp_avg must be finite, exp_avg_sq finite and >= 0 (a mean of squares). Empty when
 * sound; the fast whole-buffer pass runs first, the per-tensor one only to name what is wrong.
 */
function momentProblems(m: Float32Array, v: Float32Array, layout: readonly NamedRange[]): TensorProblem[] {
  if (allFinite(m) && allFiniteNonNegative(v)) return [];
  return [...tensorProblems(m, layout).map((p) => ({ ...p, name: `exp_avg of ${p.name}` })),
    ...tensorProblems(v, layout, { nonNegative: true }).map((p) => ({ ...p, name: `exp_avg_sq of ${p.name}` }))];
}

function rngFrom(state: readonly number[]): Rng {
  const rng = new Rng(0);
  rng.setState(state);
  return rng;
}
