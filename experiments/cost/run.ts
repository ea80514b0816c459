// The ORPO paper's §7.3 cost claim, measured: ORPO needs no reference model, so per training step it runs one
// forward of the policy where DPO runs two (policy + frozen reference), and it holds one copy of the weights.
//
// On the SAME batches (HH-RLHF harmless-base pairs tokenised with stories260K's tokenizer, max_length 256,
// max_prompt_length 192: prompts are ~73% of a pair's tokens, as in HH-RLHF) and the same initial weights, each
// configuration below runs in its own child process, so that its peak RSS (process.resourceUsage().maxRSS) is its
// own; an idle child (same imports, native addon loaded, no model, no data) gives Node's baseline.
//
//   orpo            ORPO, every weight trained                       policy 1 forward, no reference
//   sft             SFT on the chosen rows                           policy 1 forward (chosen rows only)
//   simpo           SimPO                                            policy 1 forward, no reference
//   dpo             DPO, reference on the fly: a frozen copy of the initial policy (modelReference(copy)), loaded as
//                   `orpo train` loads it: gradientCheckpointing on (it never runs backward, so it keeps the layer
//                   inputs and checkpointing's one shared layer slot, not every layer's activations)
//   dpo-precomputed DPO with the reference log-probs computed once before training (TRL's precompute_ref_log_probs,
//                   computed, as TRL and `orpo train` do without an explicit ref_model, by the initial policy itself:
//                   no copy); the pass is timed separately and amortised over one epoch (= the batches of this run)
//   orpo-lora       ORPO under LoRA (adapters trained, base frozen)
//   dpo-lora        DPO under LoRA: the reference is the policy with its adapters switched off (PEFT's
//                   disable_adapter(): modelReference(model, { adapters }), no second copy of the weights)
//
// Forward passes are counted by instrumenting model.forward / model.backward of every model object, attributed to
// the reference while a ReferenceModel's logps() runs and to the policy otherwise; tokens come from the library's
// own counts (StepResult.tokens, ReferenceModel.tokens). A step is what the trainer does per optimizer step with one
// micro-batch: zero the trainable gradients, objectiveStep (reference first), clip, AdamW.
//
//   node dist/experiments/cost/run.js [--quick] [--out DIR] [--threads 1,2] [--models stories260K,random-30M]
//                                     [--warmup N] [--steps N] [--repeats N]
//   node dist/experiments/cost/run.js --child '<json ChildRequest>'     (one configuration; prints one JSON line)
//   node dist/experiments/cost/run.js --render experiments/cost/results.json   (RESULTS.md again, no measuring)
//
// Without --out the full run (default: all cores, 3 warm-up + 8 timed steps, 3 repeats) writes experiments/cost/RESULTS.md
// and results.json; --quick (stories260K only, one thread, 1 + 2 steps, one repeat, the pairs cut to max_length 128:
// the counts, not the timings, are the point) writes to a temporary folder unless --out is given.
import { llamaConfig } from '../../bench/train-step.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AdamW, attachLora, clipGradNorm, collatePairs, createModel, createObjective, DEFAULT_DATA_OPTIONS, getKernels, loadModel,
  loadPreferencePairs, loadTokenizer, modelReference, objectiveStep, padTokenIdOf,
  type Method, type Model, type PackedBatch, type ReferenceLogps, type ReferenceModel, type TokenPair,
} from '../../src/index.js';
import { LORA_MODULES, type LoraSettings } from '../../src/lora/config.js';
import { fusedLossFor, lossHeads } from '../../src/lora/options.js';

export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const THIS_SCRIPT = fileURLToPath(import.meta.url);

export function sharedRoot(): string | null {
  const dir = process.env.ORPO_SHARED_DIR ?? join(repoRoot, '..', 'shared');
  return existsSync(join(dir, 'models', 'stories260K', 'config.json')) && existsSync(join(dir, 'data', HH_FILE)) ? dir : null;
}

const HH_FILE = 'hh-rlhf-harmless-base-test.jsonl.gz';

// ------------------------------------------------------------------------------------------------ configurations

/** The rows of every table, in order. */
export const CONFIG_NAMES = ['orpo', 'sft', 'simpo', 'dpo', 'dpo-precomputed', 'orpo-lora', 'dpo-lora'] as const;
export type ConfigName = (typeof CONFIG_NAMES)[number];

interface ConfigSpec {
  method: Method;
  lora: boolean;
  reference: 'none' | 'frozen-copy' | 'precomputed' | 'adapters-off';
  label: string;
}

export const CONFIGS: Record<ConfigName, ConfigSpec> = {
  orpo: { method: 'orpo', lora: false, reference: 'none', label: 'ORPO' },
  sft: { method: 'sft', lora: false, reference: 'none', label: 'SFT (chosen rows)' },
  simpo: { method: 'simpo', lora: false, reference: 'none', label: 'SimPO' },
  dpo: { method: 'dpo', lora: false, reference: 'frozen-copy', label: 'DPO, reference on the fly (frozen copy)' },
  'dpo-precomputed': { method: 'dpo', lora: false, reference: 'precomputed', label: 'DPO, reference log-probs precomputed' },
  'orpo-lora': { method: 'orpo', lora: true, reference: 'none', label: 'ORPO + LoRA' },
  'dpo-lora': { method: 'dpo', lora: true, reference: 'adapters-off', label: 'DPO + LoRA (reference = adapters off)' },
};


export interface ModelSpec {
  name: string;
  /** 'shared': ../shared/models/<name> loaded with loadModel; 'random': createModel(hf, { seed }) */
  kind: 'shared' | 'random';
  hf?: Record<string, unknown>;
  describe: string;
}

const RANDOM_SEED = 1234;

export const MODELS: Record<string, ModelSpec> = {
  stories260K: { name: 'stories260K', kind: 'shared', describe: 'the pretrained stories260K (Llama, 5 layers, width 64, vocabulary 512, tied; 0.26M parameters), loaded with loadModel' },
  // bench/train-step.ts's 30M: a size where one more copy of the weights is plainly visible in RSS
  'random-30M': {
    name: 'random-30M', kind: 'random', describe: 'random Llama (bench/train-step.ts\'s 30M: hidden 512, 7 layers, 8 heads / 2 KV heads, MLP 1536, vocabulary 8192, untied; 29.5M parameters), createModel',
    hf: llamaConfig({ hidden: 512, layers: 7, heads: 8, kvHeads: 2, intermediate: 1536, vocab: 8192, maxPositions: 1024 }),
  },
  // --quick's second model: the random-model code path (createModel twice for the frozen copy) in milliseconds
  'random-micro': {
    name: 'random-micro', kind: 'random', describe: 'random Llama (hidden 64, 2 layers, vocabulary 512), createModel',
    hf: llamaConfig({ hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 512, maxPositions: 512 }),
  },
};

/** LoRA as TRL users commonly run DPO: r 16, alpha 32, dropout 0.05 (TRL's defaults), every projection of a layer */
export const LORA: LoraSettings = { r: 16, alpha: 32, dropout: 0.05, targetModules: [...LORA_MODULES.llama] };
export const DATA = { maxLength: 256, maxPromptLength: 192, pairsPerBatch: 4 };
/** --quick: the same pairs cut to half the length (the same HH-RLHF shape), a smoke run of every code path */
export const QUICK_DATA = { maxLength: 128, maxPromptLength: 96, pairsPerBatch: 4 };
type DataShape = typeof DATA;
const HYPER = { lr: 5e-6, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1.0 };

// ------------------------------------------------------------------------------------------------ the child

export interface ChildRequest {
  /** a ConfigName, or 'idle' (Node's baseline: imports + native addon, no model, no data) */
  config: ConfigName | 'idle';
  model: string;
  modelDir: string | null;
  batchesFile: string;
  /** the batches' max_length and size (the loss head's fused/unfused choice depends on them, as in the CLI) */
  maxLength: number;
  pairsPerBatch: number;
  threads: number;
  warmup: number;
  steps: number;
}

interface BatchesFile {
  padTokenId: number;
  batches: TokenPair[][];
}

export interface PrecomputeResult {
  /** the whole pass, its first (cold) batch included, wall clock */
  ms: number;
  /** each batch's forward-only pass, wall clock and CPU clock (process CPU time / threads, as the steps) */
  batchMs: number[];
  batchCpuMs: number[];
  forwards: number;
  tokens: number;
  batches: number;
  /**
   * the pass's cost per training step of one epoch, steady state: its median batch on the CPU clock (one reference
   * forward per training batch of the same size), as the step times are medians; the first batch's cold start is in `ms`
   */
  amortisedMsPerStep: number;
}

export interface ChildResult {
  config: ConfigName | 'idle';
  model: string;
  threads: number;
  backend: string;
  backendThreads: number;
  params: number;
  trainableParams: number;
  /** per timed step: forward and backward passes of the policy, forwards of the reference, real tokens of each */
  policyForwards: number[];
  policyBackwards: number[];
  referenceForwards: number[];
  policyTokens: number[];
  referenceTokens: number[];
  /** forwards run on a model object other than the policy's (the frozen copy) */
  copyForwards: number;
  /** the reference's forwards ran on the policy's own model object (LoRA adapters off; precompute by the initial policy) */
  referenceOnPolicyObject: boolean;
  /** bytes of weights held only by the reference (0 when it is the policy itself or there is none) */
  referenceWeightBytes: number;
  stepMs: number[];
  stepCpuMs: number[];
  /** time inside the reference's logps() per timed step */
  referenceMs: number[];
  /** bytes of the policy's activation arena and loss heads, and of the frozen copy's (checkpointed: layer inputs + one layer) */
  policyActivationBytes: number;
  copyActivationBytes: number;
  /** the activation arenas alone: the policy model's (adapters' excluded) and the frozen copy's (0 without one) */
  policyArenaBytes: number;
  copyArenaBytes: number;
  medianStepMs: number;
  medianStepCpuMs: number;
  precompute: PrecomputeResult | null;
  firstLoss: number;
  /** wall time from the child's start to the model(s) being ready */
  setupMs: number;
  peakRssBytes: number;
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Counts every forward/backward of the models it instruments, by phase (reference while a logps() runs). */
class PassCounter {
  phase: 'policy' | 'reference' = 'policy';
  policyForwards = 0;
  policyBackwards = 0;
  referenceForwards = 0;
  referenceBackwards = 0;
  copyForwards = 0;
  referenceOnPolicy = 0;
  private policy: Model | null = null;

  instrument(model: Model, role: 'policy' | 'copy'): void {
    if (role === 'policy') this.policy = model;
    const forward = model.forward.bind(model);
    const backward = model.backward.bind(model);
    model.forward = (ids, B, T, packing) => {
      if (this.phase === 'reference') {
        this.referenceForwards++;
        if (model === this.policy) this.referenceOnPolicy++;
      } else {
        this.policyForwards++;
      }
      if (role === 'copy') this.copyForwards++;
      return forward(ids, B, T, packing);
    };
    model.backward = (d) => {
      if (this.phase === 'reference') this.referenceBackwards++;
      else this.policyBackwards++;
      return backward(d);
    };
  }

  /** the reference, its calls counted as the reference's and timed */
  wrap(ref: ReferenceModel): ReferenceModel & { ms: number } {
    const counter = this;
    const wrapped = {
      description: ref.description,
      get tokens() { return ref.tokens; },
      ms: 0,
      async logps(batch: PackedBatch): Promise<ReferenceLogps> {
        const t0 = performance.now();
        counter.phase = 'reference';
        try {
          return await ref.logps(batch);
        } finally {
          counter.phase = 'policy';
          wrapped.ms += performance.now() - t0;
        }
      },
    };
    return wrapped;
  }

  snapshot(): { pf: number; pb: number; rf: number; rb: number } {
    return { pf: this.policyForwards, pb: this.policyBackwards, rf: this.referenceForwards, rb: this.referenceBackwards };
  }
}

async function buildModel(req: ChildRequest): Promise<Model> {
  const spec = MODELS[req.model];
  if (!spec) throw new Error(`no model named '${req.model}' (have ${Object.keys(MODELS).join(', ')})`);
  if (spec.kind === 'shared') return loadModel(req.modelDir!);
  return createModel(spec.hf!, { seed: RANDOM_SEED });
}

export async function runChild(req: ChildRequest): Promise<ChildResult> {
  const t0 = performance.now();
  const kernels = getKernels();
  kernels.setThreads(req.threads);
  const base = {
    config: req.config, model: req.model, threads: req.threads, backend: kernels.name, backendThreads: kernels.getThreads(),
  };
  if (req.config === 'idle') {
    return {
      ...base, params: 0, trainableParams: 0, policyForwards: [], policyBackwards: [], referenceForwards: [], policyTokens: [],
      referenceTokens: [], copyForwards: 0, referenceOnPolicyObject: false, referenceWeightBytes: 0, stepMs: [], stepCpuMs: [],
      referenceMs: [], policyActivationBytes: 0, copyActivationBytes: 0, policyArenaBytes: 0, copyArenaBytes: 0, medianStepMs: NaN, medianStepCpuMs: NaN, precompute: null, firstLoss: NaN, setupMs: performance.now() - t0,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  }
  const spec = CONFIGS[req.config];
  const data = JSON.parse(readFileSync(req.batchesFile, 'utf8')) as BatchesFile;
  const batches = data.batches.map((pairs) => collatePairs(pairs, data.padTokenId));
  const needed = req.warmup + req.steps;
  if (batches.length < needed) throw new Error(`${req.batchesFile}: ${batches.length} batches, the run needs ${needed}`);
  const epoch = batches.slice(0, needed);

  const counter = new PassCounter();
  const model = await buildModel(req);
  counter.instrument(model, 'policy');
  const adapters = spec.lora ? attachLora(model, LORA, { seed: 7 }) : null;
  if (adapters) adapters.training = true;
  const trainable = adapters
    ? { params: adapters.params, grads: adapters.grads, zeroGrad: () => adapters.zeroGrad() }
    : { params: model.params, grads: model.grads, zeroGrad: () => model.zeroGrad() };
  const fused = fusedLossFor({ fused_loss: null }, model.config, req.pairsPerBatch, req.maxLength);
  const heads = lossHeads(model, fused);
  const objective = createObjective({ method: spec.method });

  // the reference, as the CLI builds it (src/cli/train.ts referenceModelFor), the precomputed one included (the
  // starting policy itself, before the first step)
  let reference: (ReferenceModel & { ms: number }) | null = null;
  let referenceWeightBytes = 0;
  let copyActivationBytes = (): number => 0;
  let copyArenaBytes = (): number => 0;
  if (spec.reference === 'frozen-copy') {
    const copy = await buildModel(req);
    copy.trainBase = false;
    // as `orpo train` loads it: a reference never runs backward, so checkpointing's one shared layer slot is all the
    // activations it keeps (its forward's numbers are unchanged)
    copy.gradientCheckpointing = true;
    counter.instrument(copy, 'copy');
    referenceWeightBytes = copy.params.byteLength;
    const copyHead = lossHeads(copy, fused).eval;
    copyActivationBytes = () => copy.arena.bytes() + copyHead.bytes();
    copyArenaBytes = () => copy.arena.bytes();
    reference = counter.wrap(modelReference(copy, { head: copyHead, description: 'a frozen copy of the initial policy' }));
  } else if (spec.reference === 'adapters-off') {
    reference = counter.wrap(modelReference(model, { head: heads.eval, adapters: adapters!, description: 'the policy with its LoRA adapters switched off' }));
  } else if (spec.reference === 'precomputed') {
    reference = counter.wrap(modelReference(model, { head: heads.eval, description: 'the initial policy, before the first step' }));
  }
  const setupMs = performance.now() - t0;

  // precompute_ref_log_probs: one forward-only pass over the epoch before the first step, timed on its own
  let precomputed: ReferenceLogps[] | null = null;
  let precompute: PrecomputeResult | null = null;
  if (spec.reference === 'precomputed') {
    const before = counter.snapshot();
    const tokens0 = reference!.tokens;
    const batchMs: number[] = [];
    const batchCpuMs: number[] = [];
    precomputed = [];
    for (const b of epoch) {
      const c0 = process.cpuUsage();
      const p0 = performance.now();
      const logps = await reference!.logps(b);
      batchMs.push(performance.now() - p0);
      const c = process.cpuUsage(c0);
      batchCpuMs.push((c.user + c.system) / 1000 / req.threads);
      precomputed.push(logps);
    }
    precompute = {
      ms: batchMs.reduce((a, b) => a + b, 0), batchMs, batchCpuMs, forwards: counter.referenceForwards - before.rf, tokens: reference!.tokens - tokens0,
      batches: epoch.length, amortisedMsPerStep: median(batchCpuMs),
    };
  }

  const optimizer = new AdamW(trainable.params.length,
    { lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weightDecay: HYPER.weightDecay }, kernels);
  const r: Pick<ChildResult, 'policyForwards' | 'policyBackwards' | 'referenceForwards' | 'policyTokens' | 'referenceTokens' | 'stepMs' | 'stepCpuMs' | 'referenceMs'> = {
    policyForwards: [], policyBackwards: [], referenceForwards: [], policyTokens: [], referenceTokens: [], stepMs: [], stepCpuMs: [], referenceMs: [],
  };
  let firstLoss = NaN;
  for (const [i, batch] of epoch.entries()) {
    const before = counter.snapshot();
    const refTokens0 = reference?.tokens ?? 0;
    const refMs0 = reference?.ms ?? 0;
    const c0 = process.cpuUsage();
    const s0 = performance.now();
    trainable.zeroGrad();
    const out = await objectiveStep(model, batch, objective, {
      head: heads.train, sharePrompt: true, reference: precomputed !== null ? precomputed[i]! : reference,
    });
    await clipGradNorm(trainable.grads, HYPER.maxGradNorm, kernels);
    optimizer.update(trainable.params, trainable.grads);
    const ms = performance.now() - s0;
    const cpu = process.cpuUsage(c0);
    if (!Number.isFinite(out.loss)) throw new Error(`${req.config}: loss ${out.loss} at step ${i + 1}`);
    if (i === 0) firstLoss = out.loss;
    if (i < req.warmup) continue;
    r.policyForwards.push(counter.policyForwards - before.pf);
    r.policyBackwards.push(counter.policyBackwards - before.pb);
    r.referenceForwards.push(counter.referenceForwards - before.rf);
    if (counter.referenceBackwards !== before.rb) throw new Error(`${req.config}: the reference ran a backward`);
    r.policyTokens.push(out.tokens);
    r.referenceTokens.push((reference?.tokens ?? 0) - refTokens0);
    r.stepMs.push(ms);
    r.stepCpuMs.push((cpu.user + cpu.system) / 1000 / req.threads);
    r.referenceMs.push((reference?.ms ?? 0) - refMs0);
  }
  return {
    ...base, params: model.params.length, trainableParams: trainable.params.length, ...r,
    copyForwards: counter.copyForwards, referenceOnPolicyObject: counter.referenceForwards > 0 && counter.referenceOnPolicy === counter.referenceForwards,
    referenceWeightBytes, policyActivationBytes: model.arena.bytes() + (adapters?.arena.bytes() ?? 0) + heads.train.bytes() + (heads.eval === heads.train ? 0 : heads.eval.bytes()),
    copyActivationBytes: copyActivationBytes(), policyArenaBytes: model.arena.bytes(), copyArenaBytes: copyArenaBytes(), medianStepMs: median(r.stepMs), medianStepCpuMs: median(r.stepCpuMs), precompute, firstLoss, setupMs,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

// ------------------------------------------------------------------------------------------------ the parent

export interface Row extends ChildResult {
  label: string;
  method: Method;
  lora: boolean;
  reference: ConfigSpec['reference'];
  /** the same for every timed step (checked): per step = per micro-batch here (batch 4, no accumulation) */
  policyForwardsPerStep: number;
  referenceForwardsPerStep: number;
  policyBackwardsPerStep: number;
  meanPolicyTokens: number;
  meanReferenceTokens: number;
  aboveBaselineBytes: number;
  /** the configuration this row is compared with: orpo for full fine-tuning, orpo-lora under LoRA */
  relativeTo: ConfigName;
  /** median step over the relative-to row's, on the CPU clock (the contention-robust one) and on the wall clock */
  stepRelative: number;
  stepRelativeWall: number;
  rssRelative: number;
  aboveBaselineRelative: number;
  /** every repeat's median step, wall and CPU (the row keeps the fastest of each) */
  repeatMedians: number[];
  repeatCpuMedians: number[];
}

export interface Results {
  experiment: 'cost';
  quick: boolean;
  machine: { cpu: string; cores: number; node: string; backend: string; date: string; line: string; loadAverage: { start: number[]; end: number[] } };
  settings: {
    dataset: string; tokenizer: string; maxLength: number; maxPromptLength: number; pairsPerBatch: number; warmup: number; steps: number;
    repeats: number; threads: number[]; lora: LoraSettings; batches: { count: number; meanPairTokens: number; promptFraction: number };
  };
  baselines: { threads: number; peakRssBytes: number }[];
  models: { name: string; describe: string; params: number; threads: number; rows: Row[] }[];
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

function runChildProcess(req: ChildRequest, backend: string): ChildResult {
  const env = { ...process.env, ORPO_BACKEND: backend };
  const r = spawnSync(process.execPath, [THIS_SCRIPT, '--child', JSON.stringify(req)], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`cost child (${req.model} ${req.config}, ${req.threads} threads) failed with status ${r.status}:\n${r.stderr}`);
  if (r.stderr.trim()) process.stderr.write(r.stderr);
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`cost child (${req.model} ${req.config}) printed no result`);
  return JSON.parse(line) as ChildResult;
}

function constant(xs: readonly number[], what: string): number {
  if (xs.length === 0) throw new Error(`${what}: no timed steps`);
  if (!xs.every((x) => x === xs[0])) throw new Error(`${what}: differs between steps (${xs.join(', ')})`);
  return xs[0]!;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

async function prepareBatches(shared: string, count: number, file: string, shape: DataShape): Promise<TokenPair[][]> {
  const tokenizer = await loadTokenizer(join(shared, 'models', 'stories260K'));
  const padTokenId = padTokenIdOf(tokenizer);
  const need = count * shape.pairsPerBatch;
  const { pairs } = await loadPreferencePairs(join(shared, 'data', HH_FILE), tokenizer,
    { ...DEFAULT_DATA_OPTIONS, maxLength: shape.maxLength, maxPromptLength: shape.maxPromptLength, limit: need + 64 });
  if (pairs.length < need) throw new Error(`${HH_FILE}: only ${pairs.length} usable pairs, need ${need}`);
  const batches: TokenPair[][] = [];
  for (let b = 0; b < count; b++) batches.push(pairs.slice(b * shape.pairsPerBatch, (b + 1) * shape.pairsPerBatch));
  const body: BatchesFile = { padTokenId, batches };
  writeFileSync(file, JSON.stringify(body));
  return batches;
}

const MiB = 1024 ** 2;
const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
const longer = (ratio: number): string => `${fmt(Math.abs(100 * (ratio - 1)))}% ${ratio >= 1 ? 'longer' : 'shorter'}`;
const threadsText = (t: number): string => `${t} thread${t > 1 ? 's' : ''}`;

export function markdown(res: Results): string {
  const s = res.settings;
  const lines: string[] = [
    '# Cost per training step: ORPO needs no reference model (paper §7.3), measured',
    '',
    `Machine: ${res.machine.line}. Load average (1 min) ${fmt(res.machine.loadAverage.start[0]!, 1)} at the start, ` +
      `${fmt(res.machine.loadAverage.end[0]!, 1)} at the end (the machine is shared: wall-clock times are noisy, so the × ORPO ratios use the CPU clock).`,
    '',
    `Command: \`npm run build && node dist/experiments/cost/run.js${res.quick ? ' --quick' : ''} --threads ${s.threads.join(',')}` +
      `${s.repeats > 1 ? ` --repeats ${s.repeats}` : ''}\`: ${s.warmup} warm-up + ${s.steps} timed steps per configuration, each configuration in a fresh child ` +
      `process${s.repeats > 1 ? `, ${s.repeats} repeats interleaved, each cell the fastest repeat's median` : ''}; native kernels.`,
    '',
    `Batches (the same for every row and both models): ${s.batches.count} batches of ${s.pairsPerBatch} pairs, the first pairs of ${s.dataset}, ` +
      `tokenised with ${s.tokenizer}, max_length ${s.maxLength}, max_prompt_length ${s.maxPromptLength}: ` +
      `${fmt(s.batches.meanPairTokens)} tokens per pair as TRL's two rows, prompts ${fmt(100 * s.batches.promptFraction)}% of them. ` +
      'Policy and reference alike run one row per pair with the prompt computed once (share_prompt, the default), so "tokens" are the real tokens run. ' +
      `A step = zero the trainable gradients, objectiveStep (reference first), clip, AdamW; one micro-batch per step, so per step = per micro-batch. ` +
      `LoRA: r ${s.lora.r}, alpha ${s.lora.alpha}, dropout ${s.lora.dropout}, on ${s.lora.targetModules.join(', ')}; LoRA rows are compared with ORPO + LoRA.`,
    '',
    'Forward passes are counted by instrumenting model.forward of every model object (the reference\'s while its logps() runs); tokens are the ' +
      'library\'s own counts (StepResult.tokens, ReferenceModel.tokens). Peak RSS is process.resourceUsage().maxRSS of the configuration\'s own child; ' +
      '"above baseline" subtracts the idle child\'s (same imports and native addon, no model, no data).',
    '',
  ];
  for (const b of res.baselines) lines.push(`- Node baseline, idle child, ${threadsText(b.threads)}: peak RSS ${fmt(b.peakRssBytes / MiB, 1)} MiB.`);
  for (const m of res.models) {
    lines.push('', `## ${m.name}, ${threadsText(m.threads)}`, '', `${m.describe[0]!.toUpperCase()}${m.describe.slice(1)}.`, '',
      '| method | forwards / step (policy + reference) | tokens / step (policy + reference) | step ms (CPU) | step ms (wall) | step × ORPO (CPU) | peak RSS MiB | above baseline MiB | above baseline × ORPO |',
      '|---|---|---|---:|---:|---:|---:|---:|---:|');
    for (const r of m.rows) {
      lines.push(`| ${r.label} | ${r.policyForwardsPerStep} + ${r.referenceForwardsPerStep} | ${fmt(r.meanPolicyTokens)} + ${fmt(r.meanReferenceTokens)} | ` +
        `${fmt(r.medianStepCpuMs, 1)} | ${fmt(r.medianStepMs, 1)} | ${fmt(r.stepRelative, 2)} | ${fmt(r.peakRssBytes / MiB, 1)} | ` +
        `${fmt(r.aboveBaselineBytes / MiB, 1)} | ${fmt(r.aboveBaselineRelative, 2)} |`);
    }
    const orpo = m.rows.find((r) => r.config === 'orpo')!;
    const dpo = m.rows.find((r) => r.config === 'dpo');
    const pre = m.rows.find((r) => r.config === 'dpo-precomputed');
    const lora = m.rows.find((r) => r.config === 'dpo-lora');
    lines.push('');
    if (pre?.precompute) {
      const p = pre.precompute;
      const perStep = (epochs: number): number => (pre.medianStepCpuMs + p.amortisedMsPerStep / epochs) / orpo.medianStepCpuMs;
      lines.push(`- DPO precompute pass: ${p.forwards} reference forwards (no backward) over the ${p.batches} batches of the epoch, ${fmt(p.tokens)} tokens, ` +
        `${fmt(p.ms)} ms wall in all (first, cold batch ${fmt(p.batchMs[0]!)} ms), ${fmt(p.amortisedMsPerStep, 1)} ms per batch in steady state = per step of one epoch. ` +
        `Step + amortised pass: ${fmt(perStep(1), 2)} × ORPO for one epoch, ${fmt(perStep(3), 2)} × over three` +
        `${dpo ? ` (DPO on the fly: ${fmt(dpo.stepRelative, 2)} ×)` : ''}.`);
    }
    if (dpo) {
      lines.push(`- Reference on the fly: the frozen copy holds ${fmt(dpo.referenceWeightBytes / MiB, 1)} MiB of weights and ${fmt(dpo.copyActivationBytes / MiB, 1)} MiB ` +
        `of activations and loss head: loaded as \`orpo train\` loads it, with gradient checkpointing (it never runs backward), its forward keeps the layer inputs and one ` +
        `shared layer slot, ${fmt(dpo.copyArenaBytes / MiB, 1)} MiB of arena against the policy's ${fmt(dpo.policyArenaBytes / MiB, 1)} MiB (every layer's activations, for its backward); ` +
        `the reference forward takes ${fmt(median(dpo.referenceMs))} ms wall of the step.`);
    }
    if (lora) {
      lines.push(`- DPO + LoRA: the reference ${lora.referenceOnPolicyObject ? 'ran on the policy\'s own model object (adapters switched off)' : 'did NOT run on the policy\'s model object'}, ` +
        `${fmt(lora.referenceWeightBytes / MiB, 1)} MiB of weights of its own.`);
    }
  }
  return lines.join('\n') + '\n';
}

/** The paragraph under the tables, written from the numbers so it cannot disagree with them. */
export function summaryParagraph(res: Results): string {
  const biggest = Math.max(...res.models.map((m) => m.params));
  const bigs = res.models.filter((m) => m.params === biggest);
  // the one-thread table when there is one: its CPU clock is the least disturbed by other processes
  const big = bigs.find((m) => m.threads === 1) ?? bigs[0]!;
  const get = (m: Results['models'][number], c: ConfigName): Row | undefined => m.rows.find((r) => r.config === c);
  const orpo = get(big, 'orpo')!;
  const dpo = get(big, 'dpo');
  const pre = get(big, 'dpo-precomputed');
  const dl = get(big, 'dpo-lora');
  const p: string[] = [];
  p.push('ORPO, SFT and SimPO run one policy forward and one backward per step and nothing else (SFT over the chosen rows only); ' +
    'DPO with its reference on the fly runs a second, forward-only pass over exactly the policy\'s tokens through a frozen copy of the model.');
  if (dpo) {
    p.push(`On ${big.name} (${threadsText(big.threads)}) that second pass makes the step ${longer(dpo.stepRelative)} than ORPO's on the CPU clock ` +
      `(${fmt(dpo.medianStepCpuMs)} vs ${fmt(orpo.medianStepCpuMs)} ms) and adds ${fmt((dpo.aboveBaselineBytes - orpo.aboveBaselineBytes) / MiB)} MiB of peak memory ` +
      `(${fmt(dpo.aboveBaselineRelative, 2)} × ORPO's above Node's baseline): the copy's ${fmt(dpo.referenceWeightBytes / MiB)} MiB of weights and ` +
      `${fmt(dpo.copyActivationBytes / MiB)} MiB of activations and loss head - checkpointed as \`orpo train\` loads it, since no backward follows, its forward keeps ` +
      `the layer inputs and one layer's activations, ${fmt(dpo.copyArenaBytes / MiB)} MiB of arena against the policy's ${fmt(dpo.policyArenaBytes / MiB)} MiB.`);
  }
  if (pre?.precompute) {
    const a = pre.precompute.amortisedMsPerStep;
    const one = (pre.medianStepCpuMs + a) / orpo.medianStepCpuMs;
    p.push(`Precomputing the reference log-probs closes the per-step gap - the DPO step is then ${fmt(pre.stepRelative, 2)} × ORPO's time and ` +
      `${fmt(pre.aboveBaselineRelative, 2)} × its memory, with no second copy (the pass is run by the initial policy itself, as TRL does without a ref_model) - ` +
      `but only by moving the reference forwards ahead of training: the pass costs ${fmt(a)} ms per batch (${fmt(pre.precompute.ms / 1000, 1)} s wall for this ` +
      `${pre.precompute.batches}-batch epoch, its cold first batch included), so an epoch of precomputed DPO costs ${fmt(one, 2)} × ORPO` +
      `${dpo ? ` (on the fly: ${fmt(dpo.stepRelative, 2)} ×)` : ''}, and the gap shrinks only as the one pass is spread over several epochs ` +
      `(${fmt((pre.medianStepCpuMs + a / 3) / orpo.medianStepCpuMs, 2)} × over three); new data means a new pass. ` +
      '(`orpo train --precompute-ref-log-probs` without --ref-model does the same: no copy, the starting policy itself runs the pass before the first step, ' +
      'over the training pairs and also the evaluation pairs, of which this experiment has none, and keeps the log-probs in the trainer state; so its step and memory are this row\'s.)');
  }
  if (dl) {
    const ol = get(big, 'orpo-lora')!;
    p.push(`Under LoRA the reference is the policy with its adapters switched off: ${dl.referenceOnPolicyObject ? 'the same model object, ' : ''}` +
      `${fmt(dl.referenceWeightBytes / MiB)} MiB of reference weights and ${fmt(dl.aboveBaselineRelative, 2)} × ORPO + LoRA's memory ` +
      `(${fmt(dl.aboveBaselineBytes / MiB)} vs ${fmt(ol.aboveBaselineBytes / MiB)} MiB above baseline), but still the second forward: ${fmt(dl.stepRelative, 2)} × its step time.`);
  }
  const small = res.models.find((m) => m.params !== biggest && m.threads === big.threads);
  if (small) {
    const so = get(small, 'orpo')!;
    const sd = get(small, 'dpo');
    const sl = get(small, 'dpo-lora');
    if (sd) {
      p.push(`On ${small.name} (${fmt(so.params * 4 / MiB, 1)} MiB of weights) the copy's weights vanish in Node's own ` +
        `${fmt(res.baselines.find((b) => b.threads === small.threads)!.peakRssBytes / MiB)} MiB, yet on-the-fly DPO still takes ${fmt(sd.stepRelative, 2)} × ORPO's step time ` +
        `and ${fmt(sd.aboveBaselineRelative, 2)} × its memory above baseline (the copy's activations and loss head, ${fmt(sd.copyActivationBytes / MiB)} MiB, ` +
        `${fmt(sd.copyArenaBytes / MiB, 1)} of it arena against the policy's ${fmt(sd.policyArenaBytes / MiB, 1)} MiB)` +
        `${sl ? `; DPO + LoRA ${fmt(sl.stepRelative, 2)} × and ${fmt(sl.aboveBaselineRelative, 2)} × ORPO + LoRA's` : ''}.`);
    }
  }
  const others = res.models.filter((m) => m !== big && m.params === biggest);
  for (const m of others) {
    const d = get(m, 'dpo');
    const dlm = get(m, 'dpo-lora');
    if (d) {
      p.push(`At ${threadsText(m.threads)} the ratios are ${fmt(d.stepRelative, 2)} × (DPO on the fly), ` +
        `${fmt(get(m, 'dpo-precomputed')?.stepRelative ?? NaN, 2)} × (precomputed, step only)${dlm ? ` and ${fmt(dlm.stepRelative, 2)} × (DPO + LoRA)` : ''}.`);
    }
  }
  return ['## What the numbers show', '', p.join(' ')].join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      threads: { type: 'string' },
      models: { type: 'string' },
      warmup: { type: 'string' },
      steps: { type: 'string' },
      repeats: { type: 'string' },
      render: { type: 'string' },
    },
  });
  if (values.render !== undefined) {
    // RESULTS.md again from a results.json, without measuring
    const res = JSON.parse(readFileSync(values.render, 'utf8')) as Results;
    const file = join(resolve(values.out ?? join(values.render, '..')), 'RESULTS.md');
    writeFileSync(file, markdown(res) + '\n' + summaryParagraph(res));
    console.log(`wrote ${file}`);
    return;
  }
  if (values.child !== undefined) {
    process.stdout.write(JSON.stringify(await runChild(JSON.parse(values.child) as ChildRequest)) + '\n');
    return;
  }
  const quick = values.quick!;
  const shared = sharedRoot();
  if (shared === null) {
    console.error('experiments/cost: ../shared (models/stories260K and data/' + HH_FILE + ') is not present next to this checkout; nothing to measure');
    process.exit(2);
  }
  const outDir = values.out !== undefined ? resolve(values.out) : quick ? mkdtempSync(join(tmpdir(), 'orpo-cost-quick-')) : join(repoRoot, 'experiments', 'cost');
  mkdirSync(outDir, { recursive: true });
  // --quick (the test's run) on one thread: the counts are what it checks, and one thread keeps it fast on a busy machine
  const threads = (values.threads ?? String(quick ? 1 : availableParallelism())).split(',').map(Number);
  const models = (values.models ?? (quick ? 'stories260K' : 'stories260K,random-30M')).split(',').map((n) => {
    const m = MODELS[n.trim()];
    if (!m) throw new Error(`no model named '${n}' (have ${Object.keys(MODELS).join(', ')})`);
    return m;
  });
  // the first two or three steps of a process still pay for JIT and first-touch page faults
  const warmup = Number(values.warmup ?? (quick ? 1 : 3));
  const steps = Number(values.steps ?? (quick ? 2 : 8));
  const repeats = Number(values.repeats ?? (quick ? 1 : 3));
  const backend = getKernels().name;
  if (backend !== 'native') console.error(`experiments/cost: the native addon is not loaded; measuring the ${backend} backend`);

  const work = mkdtempSync(join(tmpdir(), 'orpo-cost-'));
  try {
    const batchesFile = join(work, 'batches.json');
    const data = quick ? QUICK_DATA : DATA;
    const batches = await prepareBatches(shared, warmup + steps, batchesFile, data);
    let pairTokens = 0;
    let promptTokens = 0;
    for (const b of batches) for (const p of b) {
      pairTokens += 2 * p.prompt.length + p.chosen.length + p.rejected.length;
      promptTokens += 2 * p.prompt.length;
    }
    const loadStart = loadavg();
    const nPairs = batches.length * data.pairsPerBatch;
    const res: Results = {
      experiment: 'cost', quick,
      machine: {
        cpu: cpuModel(), cores: availableParallelism(), node: process.version, backend, date: new Date().toISOString().slice(0, 10),
        line: `${cpuModel()}, ${availableParallelism()} cores, node ${process.version}, ${backend} backend, ${new Date().toISOString().slice(0, 10)}`,
        loadAverage: { start: loadStart, end: [] },
      },
      settings: {
        dataset: `../shared/data/${HH_FILE}`, tokenizer: 'stories260K\'s tokenizer (vocabulary 512)', maxLength: data.maxLength,
        maxPromptLength: data.maxPromptLength, pairsPerBatch: data.pairsPerBatch, warmup, steps, repeats, threads, lora: LORA,
        batches: { count: batches.length, meanPairTokens: pairTokens / nPairs, promptFraction: promptTokens / pairTokens },
      },
      baselines: [], models: [],
    };
    const started = performance.now();
    for (const t of threads) {
      const idle = runChildProcess({ config: 'idle', model: 'none', modelDir: null, batchesFile, maxLength: data.maxLength, pairsPerBatch: data.pairsPerBatch, threads: t, warmup, steps }, backend);
      res.baselines.push({ threads: t, peakRssBytes: idle.peakRssBytes });
      console.log(`idle child, ${t} thread(s): peak RSS ${(idle.peakRssBytes / MiB).toFixed(1)} MiB`);
    }
    for (const spec of models) {
      for (const t of threads) {
        const baseline = res.baselines.find((b) => b.threads === t)!.peakRssBytes;
        const results = new Map<ConfigName, ChildResult[]>();
        // repeats interleave the configurations, so a slow patch of a shared machine hits all of them alike
        for (let rep = 0; rep < repeats; rep++) {
          for (const name of CONFIG_NAMES) {
            const req: ChildRequest = {
              config: name, model: spec.name, modelDir: spec.kind === 'shared' ? join(shared, 'models', spec.name) : null, batchesFile,
              maxLength: data.maxLength, pairsPerBatch: data.pairsPerBatch, threads: t, warmup, steps,
            };
            const r = runChildProcess(req, backend);
            results.set(name, [...(results.get(name) ?? []), r]);
            console.log(`${spec.name} ${t} thr ${name.padEnd(16)} step ${r.medianStepMs.toFixed(1)} ms (CPU ${r.medianStepCpuMs.toFixed(1)}), ` +
              `forwards ${r.policyForwards[0]} + ${r.referenceForwards[0]}, peak RSS ${(r.peakRssBytes / MiB).toFixed(1)} MiB` +
              (r.precompute ? `, precompute ${r.precompute.ms.toFixed(0)} ms` : ''));
          }
        }
        const rowsOut: Row[] = CONFIG_NAMES.map((name) => {
          const all = results.get(name)!;
          // the fastest repeat on the CPU clock; the wall-clock cell is the fastest repeat on its own clock
          const best = all.reduce((a, b) => (b.medianStepCpuMs < a.medianStepCpuMs ? b : a));
          const precompute = all.map((x) => x.precompute).reduce((a, b) => (a === null || (b !== null && b.amortisedMsPerStep < a.amortisedMsPerStep) ? b : a), null);
          const cs = CONFIGS[name];
          return {
            ...best, medianStepMs: Math.min(...all.map((x) => x.medianStepMs)), precompute,
            label: cs.label, method: cs.method, lora: cs.lora, reference: cs.reference,
            policyForwardsPerStep: constant(best.policyForwards, `${name} policy forwards`),
            referenceForwardsPerStep: constant(best.referenceForwards, `${name} reference forwards`),
            policyBackwardsPerStep: constant(best.policyBackwards, `${name} policy backwards`),
            meanPolicyTokens: mean(best.policyTokens), meanReferenceTokens: mean(best.referenceTokens),
            // peak memory barely depends on the repeat; the row reports the largest seen
            peakRssBytes: Math.max(...all.map((x) => x.peakRssBytes)),
            aboveBaselineBytes: Math.max(...all.map((x) => x.peakRssBytes)) - baseline,
            relativeTo: cs.lora ? 'orpo-lora' : 'orpo', stepRelative: NaN, stepRelativeWall: NaN, rssRelative: NaN, aboveBaselineRelative: NaN,
            repeatMedians: all.map((x) => x.medianStepMs), repeatCpuMedians: all.map((x) => x.medianStepCpuMs),
          };
        });
        for (const r of rowsOut) {
          const ref = rowsOut.find((x) => x.config === r.relativeTo)!;
          r.stepRelative = r.medianStepCpuMs / ref.medianStepCpuMs;
          r.stepRelativeWall = r.medianStepMs / ref.medianStepMs;
          r.rssRelative = r.peakRssBytes / ref.peakRssBytes;
          r.aboveBaselineRelative = r.aboveBaselineBytes / ref.aboveBaselineBytes;
        }
        res.models.push({ name: spec.name, describe: spec.describe, params: rowsOut[0]!.params, threads: t, rows: rowsOut });
      }
    }
    res.machine.loadAverage.end = loadavg();
    const md = markdown(res) + '\n' + summaryParagraph(res);
    writeFileSync(join(outDir, 'results.json'), JSON.stringify(res, null, 2) + '\n');
    writeFileSync(join(outDir, 'RESULTS.md'), md);
    console.log(`\n${md}\nwrote ${join(outDir, 'RESULTS.md')} and results.json (${((performance.now() - started) / 1000).toFixed(1)} s of measurement)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === THIS_SCRIPT) await main();
