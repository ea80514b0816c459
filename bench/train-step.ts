// Benchmark 2 and 3 of issue 6: ORPO training steps (forward, backward, clipping, AdamW) in tokens/s, model-FLOPs
// utilisation and peak RSS, side by side with a PyTorch twin of the same model, batch, loss and initial weights
// (bench/torch_twin.py).
//
// Every measurement runs in a fresh child process so its peak RSS (process.resourceUsage().maxRSS) belongs to that
// configuration alone:   node dist/bench/train-step.js --child '<json ChildRequest>'   prints one JSON line.
// The parent (runTrainStepBench, called by bench/run.ts) writes the initial weights and the batch once per config,
// runs our child and the twin's child at each thread count, and checks that both start from the same loss.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Kernels } from '../src/backend/kernels.js';
import { getKernels } from '../src/backend/index.js';
import type { PackedBatch, TokenPair } from '../src/data/collate.js';
import { collatePairs } from '../src/data/collate.js';
import { hfTensors } from '../src/io/hf-model.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { createModel } from '../src/model/create.js';
import { UnfusedLogprobHead } from '../src/loss/logprob-head.js';
import { orpoStep } from '../src/loss/orpo.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import type { DecoderBase } from '../src/model/base.js';
import { Rng } from '../src/tensor/rng.js';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const outDir = join(repoRoot, 'bench', 'out');

// ------------------------------------------------------------------------------------------------ configurations

/** A benchmark configuration: a Llama-style config.json and the shape of its batch. */
export interface BenchConfig {
  name: string;
  /** config.json contents, as a user would write them */
  hf: Record<string, unknown>;
  pairs: number;
  seq: number;
  /** every row is prompt (this many tokens) + response (seq - promptLen): full length, no padding */
  promptLen: number;
  /** what the row shape stands for, when it is more than a size (the tables' footnote) */
  note?: string;
  /** steps the parent asks for by default (the 30M step is ~7x the 5M one) */
  warmup: number;
  steps: number;
}

/** A Llama-style config.json (also the cost experiment's random model). */
export function llamaConfig(o: { hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number;
  vocab: number; maxPositions: number }): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: o.vocab, hidden_size: o.hidden,
    intermediate_size: o.intermediate, num_hidden_layers: o.layers, num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads, max_position_embeddings: o.maxPositions, rms_norm_eps: 1e-5,
    rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false, initializer_range: 0.02,
    bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  };
}

/**
 * Two sizes a user would train on a CPU: vocabulary 8192 (a small BPE), grouped-query attention (3:1 and 4:1),
 * SwiGLU width ~8/3 to 3x hidden, untied head.
 *   5M:  hidden 192, 5 layers, 6 heads of 32 (2 KV heads), MLP 512  -> 5.11M parameters, 8 rows x 256
 *   30M: hidden 512, 7 layers, 8 heads of 64 (2 KV heads), MLP 1536 -> 29.5M parameters, 4 rows x 512
 */
export const BENCH_CONFIGS: readonly BenchConfig[] = [
  { name: '5M', hf: llamaConfig({ hidden: 192, layers: 5, heads: 6, kvHeads: 2, intermediate: 512, vocab: 8192, maxPositions: 1024 }),
    pairs: 4, seq: 256, promptLen: 64, warmup: 2, steps: 5 },
  { name: '30M', hf: llamaConfig({ hidden: 512, layers: 7, heads: 8, kvHeads: 2, intermediate: 1536, vocab: 8192, maxPositions: 1024 }),
    pairs: 2, seq: 512, promptLen: 128, warmup: 2, steps: 3 },
  // The 5M model on rows shaped like ../shared/data's HH-RLHF: prompts are 72% of a pair's tokens there (1.12M of
  // 2.00M characters: multi-turn conversations before one short answer), so 184 of 256 tokens are prompt. This is
  // where computing the shared prompt once matters; the two configs above keep prompts at a quarter of the row.
  { name: '5M-hh', hf: llamaConfig({ hidden: 192, layers: 5, heads: 6, kvHeads: 2, intermediate: 512, vocab: 8192, maxPositions: 1024 }),
    pairs: 4, seq: 256, promptLen: 184, warmup: 2, steps: 5,
    note: 'the 5M model on HH-RLHF-shaped rows (prompt 184 of 256 tokens, as prompts are 72% of HH-RLHF pair tokens)' },
];

/** A tiny config for the smoke test: the same code path in well under a second. */
export const MICRO_CONFIG: BenchConfig = {
  name: 'micro', hf: llamaConfig({ hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, vocab: 97, maxPositions: 64 }),
  pairs: 2, seq: 16, promptLen: 5, warmup: 1, steps: 2,
};

export function findConfig(name: string): BenchConfig {
  const c = [...BENCH_CONFIGS, MICRO_CONFIG].find((x) => x.name === name);
  if (!c) throw new Error(`no bench config named '${name}' (have ${[...BENCH_CONFIGS, MICRO_CONFIG].map((x) => x.name).join(', ')})`);
  return c;
}

export const MODEL_SEED = 1234;
const BATCH_SEED = 42;

/** Random tokens, one fixed prompt per pair shared by chosen and rejected, every row exactly `seq` tokens. */
export function benchPairs(cfg: BenchConfig): TokenPair[] {
  const V = cfg.hf.vocab_size as number;
  const rng = new Rng(BATCH_SEED);
  const tokens = (n: number): number[] => Array.from({ length: n }, () => rng.int(V));
  return Array.from({ length: cfg.pairs }, () => ({
    prompt: tokens(cfg.promptLen), chosen: tokens(cfg.seq - cfg.promptLen), rejected: tokens(cfg.seq - cfg.promptLen),
  }));
}

/** Training hyperparameters of both implementations (TRL/transformers defaults except the learning rate). */
export const HYPER = { beta: 0.1, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1.0 };

// ------------------------------------------------------------------------------------------------ FLOPs and bytes

export interface StepCost {
  params: number;
  /** parameters that take part in a matrix product: every linear weight including lm_head, not the embedding or norms */
  matmulParams: number;
  /** real tokens per step: rows x seq (2 x pairs x seq) */
  tokens: number;
  matmulFlops: number;
  attentionFlops: number;
  /** FLOPs of one training step (forward + backward) */
  flops: number;
}

/**
 * Model FLOPs of one step, the PaLM / llm.c convention the MFU target uses:
 *   matmuls:   6 x matmulParams x tokens   (2 per multiply-add forward, twice that backward)
 *   attention: per layer, forward QK^T and PV each cost 2·B·NH·T²·HD over the full square; causal masking halves it,
 *              so forward = 2·B·NH·T²·HD, and forward + backward = 3 x forward = 6·B·NH·T²·HD.
 * Norms, RoPE, SwiGLU, softmax and the optimizer are not counted (they are "free" in MFU terms).
 */
export function stepCost(cfg: BenchConfig, model: DecoderBase): StepCost {
  const c = model.config;
  const params = model.params.length;
  let matmulParams = 0;
  for (const p of model.layout) if (p.shape.length === 2 && p.name !== 'model.embed_tokens.weight') matmulParams += p.size;
  const B = 2 * cfg.pairs;
  const T = cfg.seq;
  const tokens = B * T;
  const matmulFlops = 6 * matmulParams * tokens;
  const attentionFlops = c.numLayers * 6 * B * c.numHeads * T * T * c.headDim;
  return { params, matmulParams, tokens, matmulFlops, attentionFlops, flops: matmulFlops + attentionFlops };
}

// ------------------------------------------------------------------------------------------------ kernel profiler

export interface KernelTime {
  kernel: string;
  calls: number;
  /** wall clock */
  ms: number;
  /** process CPU time / threads, the clock the step times and the FMA peak use */
  cpuMs: number;
  /** FLOPs the calls performed (matrix products and attention only; 0 for the rest) */
  flops: number;
}

/** FLOPs of one kernel call from its arguments (only the kernels that do matrix work). */
function callFlops(kernel: string, args: unknown[]): number {
  const n = (i: number): number => args[i] as number;
  switch (kernel) {
    case 'gemm': return 2 * n(3) * n(4) * n(5);
    case 'matmulForward': return 2 * n(4) * n(5) * n(6);
    case 'matmulBackward': return 2 * n(6) * n(7) * n(8) * ((args[0] ? 1 : 0) + (args[1] ? 1 : 0));
    // QK^T and PV: 2 FLOPs per (query, key) pair and head dimension each; backward twice that (as 6 x forward + backward = 3 x forward)
    case 'attentionForward': return 4 * attentionPairs(n(5), n(6), args[12] as Int32Array | null | undefined) * n(7) * n(9);
    case 'attentionBackward': return 8 * attentionPairs(n(9), n(10), args[16] as Int32Array | null | undefined) * n(11) * n(13);
    default: return 0;
  }
}

/** (query, key) pairs attention computes: T(T+1)/2 per causal row, less the hidden keys of a shared-prompt row */
function attentionPairs(B: number, T: number, hidden: Int32Array | null | undefined): number {
  let pairs = 0;
  for (let b = 0; b < B; b++) {
    pairs += (T * (T + 1)) / 2;
    if (hidden) pairs -= Math.max(0, T - hidden[2 * b + 1]) * (hidden[2 * b + 1] - hidden[2 * b]);
  }
  return pairs;
}

/**
 * Wraps a backend so every kernel call can be timed (only while `recording`): the benchmark's view of where a
 * step's time goes. The wrapper costs a property lookup per call when not recording.
 */
export class KernelProfiler {
  recording = false;
  /** divides the process CPU time of a call (all threads) into per-thread time */
  threads = 1;
  private readonly times = new Map<string, KernelTime>();
  readonly kernels: Kernels;

  constructor(base: Kernels) {
    const wrapped = new Map<PropertyKey, unknown>();
    this.kernels = new Proxy(base, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'setThreads' || prop === 'getThreads') {
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        }
        let w = wrapped.get(prop);
        if (!w) {
          const fn = value as (...a: unknown[]) => unknown;
          w = (...args: unknown[]): unknown => {
            if (!this.recording) return fn.apply(target, args);
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            const r = fn.apply(target, args);
            const ms = performance.now() - t0;
            const c = process.cpuUsage(c0);
            this.add(prop, ms, (c.user + c.system) / 1000 / this.threads, callFlops(prop, args));
            return r;
          };
          wrapped.set(prop, w);
        }
        return w;
      },
    });
  }

  private add(kernel: string, ms: number, cpuMs: number, flops: number): void {
    const t = this.times.get(kernel) ?? { kernel, calls: 0, ms: 0, cpuMs: 0, flops: 0 };
    t.calls++;
    t.ms += ms;
    t.cpuMs += cpuMs;
    t.flops += flops;
    this.times.set(kernel, t);
  }

  report(): KernelTime[] {
    return [...this.times.values()].sort((a, b) => b.cpuMs - a.cpuMs);
  }
}

// ------------------------------------------------------------------------------------------------ our step (child)

export interface ChildRequest {
  config: string;
  threads: number;
  warmup: number;
  steps: number;
  /** time one extra step kernel by kernel */
  profile: boolean;
  /** one forward row per pair with the prompt shared (our default), or TRL's two rows as the twin runs them */
  sharePrompt?: boolean;
  /** bf16 mixed precision for the matrix products (the bf16 option) */
  bf16?: boolean;
}

/** What both implementations report for one configuration at one thread count (one fresh process). */
export interface StepMeasurement {
  config: string;
  threads: number;
  /** real tokens per step */
  tokens: number;
  /** timed steps after the warm-up, wall clock */
  stepMs: number[];
  medianStepMs: number;
  /** tokens / median wall-clock step */
  tokensPerSec: number;
  /**
   * the same steps on the process's CPU clock divided by the thread count. On a shared machine other processes
   * take cores away mid-step, which the wall clock counts and the CPU clock does not (a thread spinning while it
   * waits for a slower one is still charged), so this is the contention-free estimate the comparison uses.
   */
  stepCpuMs: number[];
  medianStepCpuMs: number;
  tokensPerSecCpu: number;
  /** loss and pre-clipping gradient norm of the first step, from the shared initial weights */
  firstLoss: number;
  firstGradNorm: number;
  /** process RSS after imports, before the model exists */
  baselineRssBytes: number;
  peakRssBytes: number;
}

export interface OursResult extends StepMeasurement {
  impl: 'orpo-ts';
  backend: string;
  /** threads the backend reports using (the js backend always runs on one) */
  backendThreads: number;
  analytic: { paramBytes: number; gradBytes: number; adamBytes: number; activationBytes: number; totalBytes: number };
  profile: { stepMs: number; stepCpuMs: number; kernels: KernelTime[] } | null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run warm-up and timed ORPO steps of one configuration in this process. */
export async function measureOurs(req: ChildRequest, baselineRssBytes = process.memoryUsage().rss): Promise<OursResult> {
  const cfg = findConfig(req.config);
  const base = getKernels();
  base.setThreads(req.threads);
  base.setMatmulBf16(req.bf16 ?? false);
  const profiler = new KernelProfiler(base);
  profiler.threads = req.threads;
  const kernels = profiler.kernels;
  const model = createModel(cfg.hf, { seed: MODEL_SEED, kernels });
  const head = new UnfusedLogprobHead(kernels);
  const batch: PackedBatch = collatePairs(benchPairs(cfg), 0);
  const opt = new AdamW(model.params.length,
    { lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weightDecay: HYPER.weightDecay }, kernels);
  const step = async (): Promise<{ loss: number; norm: number; ms: number; cpuMs: number }> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    model.zeroGrad();
    const r = await orpoStep(model, batch, { beta: HYPER.beta, sftScope: 'full', head, sharePrompt: req.sharePrompt ?? true });
    const norm = await clipGradNorm(model.grads, HYPER.maxGradNorm, kernels);
    opt.update(model.params, model.grads);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return { loss: r.loss, norm, ms, cpuMs: (c.user + c.system) / 1000 / req.threads };
  };
  const first = await step();
  for (let i = 1; i < req.warmup; i++) await step();
  const stepMs: number[] = [];
  const stepCpuMs: number[] = [];
  for (let i = 0; i < req.steps; i++) {
    const t = await step();
    stepMs.push(t.ms);
    stepCpuMs.push(t.cpuMs);
  }
  let profile: OursResult['profile'] = null;
  if (req.profile) {
    profiler.recording = true;
    const t = await step();
    profiler.recording = false;
    profile = { stepMs: t.ms, stepCpuMs: t.cpuMs, kernels: profiler.report() };
  }
  const P = model.params.length;
  const activationBytes = model.arena.bytes() + head.bytes();
  const medianStepMs = median(stepMs);
  const medianStepCpuMs = median(stepCpuMs);
  return {
    impl: 'orpo-ts', backend: base.name, config: cfg.name, threads: req.threads, backendThreads: base.getThreads(),
    tokens: batch.tokens, stepMs, medianStepMs, tokensPerSec: batch.tokens / (medianStepMs / 1000),
    stepCpuMs, medianStepCpuMs, tokensPerSecCpu: batch.tokens / (medianStepCpuMs / 1000),
    firstLoss: first.loss, firstGradNorm: first.norm, baselineRssBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    analytic: { paramBytes: 4 * P, gradBytes: 4 * P, adamBytes: 8 * P, activationBytes,
      totalBytes: 16 * P + activationBytes },
    profile,
  };
}

// ------------------------------------------------------------------------------------------------ the twin

export interface TwinResult extends StepMeasurement {
  impl: 'pytorch';
  torchVersion: string;
  /** the kernel library the twin ran (BLAS and its core type, oneDNN), as torch and threadpoolctl report it */
  blas: string;
  attention: string;
  optimizer: string;
}

export const TWIN_PYTHON = process.env.ORPO_BENCH_PYTHON ?? '/usr/bin/python3';
const TWIN_SCRIPT = join(repoRoot, 'bench', 'torch_twin.py');

/** null when torch imports, else why the twin cannot run */
export function twinUnavailable(): string | null {
  if (!existsSync(TWIN_PYTHON)) return `${TWIN_PYTHON} not found`;
  const r = spawnSync(TWIN_PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (r.status !== 0) return `PyTorch is not installed for ${TWIN_PYTHON} (apt-get install -y python3-torch): ${r.stderr.trim().split('\n').pop()}`;
  return null;
}

/**
 * glibc hands every block over 32 MiB back to the kernel when it is freed, so a framework that allocates its
 * tensors per step (PyTorch: logits, T x T attention scores) page-faults them in again every step; tuned CPU PyTorch
 * setups preload jemalloc or tcmalloc for this. These two glibc settings do the same without a package (measured
 * here: the twin's 30M step at 2 threads 5.5 s -> 2.4 s). Both implementations get them, so the comparison stays
 * symmetric (ours reuses its buffers, so it barely notices).
 */
export function cachingMallocEnv(): NodeJS.ProcessEnv {
  return { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 36) };
}

/**
 * The twin's environment. This machine sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which halve OpenBLAS's speed:
 * they are removed for the twin only. OpenBLAS and OpenMP start their own threads whatever torch.set_num_threads
 * says, so their thread counts are pinned to the count under test.
 */
export function twinEnv(threads: number): NodeJS.ProcessEnv {
  const env = cachingMallocEnv();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  for (const k of ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS']) env[k] = String(threads);
  // Spinning OpenMP workers take the core from the thread doing the work when the machine is oversubscribed
  // (measured here at 2 threads: 5.2 s CPU per 5M step spinning, 1.4 s passive), so PyTorch gets passive waits.
  env.OMP_WAIT_POLICY = process.env.OMP_WAIT_POLICY ?? 'PASSIVE';
  return env;
}

function lastJsonLine<T>(stdout: string, what: string): T {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`${what} printed no JSON result`);
  return JSON.parse(line) as T;
}

function runTwin(cfg: BenchConfig, dir: string, threads: number, warmup: number, steps: number, bf16 = false): TwinResult {
  const args = [TWIN_SCRIPT, '--weights', join(dir, 'model.safetensors'), '--batch', join(dir, 'batch.json'),
    '--threads', String(threads), '--warmup', String(warmup), '--steps', String(steps), ...(bf16 ? ['--bf16'] : [])];
  const r = spawnSync(TWIN_PYTHON, args, { env: twinEnv(threads), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`torch twin (${cfg.name}, ${threads} threads) failed:\n${r.stderr}`);
  return lastJsonLine<TwinResult>(r.stdout, 'torch twin');
}

/**
 * Our step in a fresh process, on the backend the parent selected: ORPO_BACKEND pins it, so a child that cannot
 * load the addon (e.g. while someone rebuilds build/Release) fails instead of silently timing the TypeScript
 * backend; it is retried a few times, seconds apart.
 */
function runOursChild(req: ChildRequest, backend: string): OursResult {
  const env = { ...cachingMallocEnv(), ORPO_THREADS: String(req.threads), ORPO_BACKEND: backend };
  let stderr = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    if (attempt > 0) spawnSync('sleep', ['15']);
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(req)],
      { env, encoding: 'utf8', maxBuffer: 64 << 20 });
    stderr = r.stderr;
    if (r.status === 0) {
      if (r.stderr.trim()) process.stderr.write(r.stderr);
      return lastJsonLine<OursResult>(r.stdout, 'train-step child');
    }
  }
  throw new Error(`train-step child (${req.config}, ${req.threads} threads, ORPO_BACKEND=${backend}) failed:\n${stderr}`);
}

/** Initial weights (HF names, F32) and the batch, for the twin to start exactly where we start. */
export async function writeTwinInputs(cfg: BenchConfig, dir: string): Promise<StepCost> {
  const model = createModel(cfg.hf, { seed: MODEL_SEED });
  await writeSafetensors(join(dir, 'model.safetensors'), hfTensors(model));
  const batch = collatePairs(benchPairs(cfg), 0);
  const hp = { beta: HYPER.beta, lr: HYPER.lr, betas: [HYPER.beta1, HYPER.beta2], eps: HYPER.eps,
    weight_decay: HYPER.weightDecay, max_grad_norm: HYPER.maxGradNorm };
  writeFileSync(join(dir, 'batch.json'), JSON.stringify({ config: cfg.hf, name: cfg.name, rows: batch.rows, T: batch.T,
    n_pairs: batch.nPairs, prompt_len: cfg.promptLen, ids: Array.from(batch.ids), ...hp }));
  return stepCost(cfg, model);
}

// ------------------------------------------------------------------------------------------------ the comparison

export interface TrainStepRow {
  config: string;
  threads: number;
  /** our step as a user runs it: one row per pair, the prompt computed once (share_prompt, the default) */
  ours: OursResult;
  /** our step on TRL's two rows per pair: the same work as the twin */
  oursTwoRows: OursResult;
  torch: TwinResult | null;
  /** bf16 mixed precision: ours (shared prompt) and the twin under torch.autocast(bfloat16) */
  oursBf16: OursResult;
  torchBf16: TwinResult | null;
  /** our tokens/s over PyTorch's, both on the CPU clock (see StepMeasurement.stepCpuMs) */
  ratio: number | null;
  /** the same on the wall clock */
  wallRatio: number | null;
  /** two rows per pair (like for like) over PyTorch, CPU clock */
  ratioTwoRows: number | null;
  /** model FLOPs / CPU-clock step / FMA peak (the peak probe uses the CPU clock too), two-row step: like for like */
  mfuOurs: number | null;
  /** the same model FLOPs over the shared-prompt step, which skips some of them: an effective rate, not utilisation */
  mfuOursShared: number | null;
  mfuTorch: number | null;
  /** |our first loss - twin's| / |twin's|: both start from the same weights and batch */
  lossRelDiff: number | null;
  gradNormRelDiff: number | null;
}

export interface TrainStepReport {
  backend: string;
  twinNote: string | null;
  peakSource: string | null;
  configs: { name: string; hf: Record<string, unknown>; pairs: number; seq: number; promptLen: number; note?: string; cost: StepCost }[];
  rows: TrainStepRow[];
}

export interface TrainStepOptions {
  configs: readonly BenchConfig[];
  threads: readonly number[];
  /** override each config's default warm-up/timed steps */
  warmup?: number;
  steps?: number;
  /** FMA peak FLOP/s by thread count (from the GEMM bench), for MFU; MFU is left out where missing */
  peakFlops: (threads: number) => number | null;
  peakSource: string | null;
  /** skip the PyTorch twin even when torch is installed */
  noTwin?: boolean;
  /**
   * measure every row this many times (ours in both layouts and the twin, side by side each time) and keep each
   * one's fastest median: on a shared machine one process's step time moves 20-35% between runs (PyTorch's more
   * than ours), and the best of several is each implementation's own best (default 1)
   */
  repeats?: number;
  log?: (line: string) => void;
}

export async function runTrainStepBench(opts: TrainStepOptions): Promise<TrainStepReport> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const twinNote = opts.noTwin ? 'PyTorch twin skipped (--no-twin)' : twinUnavailable();
  if (twinNote) log(`train-step: ${twinNote}; our numbers only`);
  const repeats = Math.max(1, opts.repeats ?? 1);
  const dir = mkdtempSync(join(tmpdir(), 'orpo-bench-'));
  const report: TrainStepReport = { backend: getKernels().name, twinNote, peakSource: opts.peakSource, configs: [], rows: [] };
  const faster = <T extends StepMeasurement>(a: T | null | undefined, b: T | null): T | null =>
    (!a ? b : !b ? a : b.medianStepCpuMs < a.medianStepCpuMs ? b : a);
  try {
    const prepared: { cfg: BenchConfig; cost: StepCost; dir: string }[] = [];
    for (const cfg of opts.configs) {
      const sub = join(dir, cfg.name);
      mkdirSync(sub);
      const cost = await writeTwinInputs(cfg, sub);
      prepared.push({ cfg, cost, dir: sub });
      report.configs.push({ name: cfg.name, hf: cfg.hf, pairs: cfg.pairs, seq: cfg.seq, promptLen: cfg.promptLen,
        ...(cfg.note ? { note: cfg.note } : {}), cost });
    }
    const best = new Map<string, { ours: OursResult; oursTwoRows: OursResult; torch: TwinResult | null;
      oursBf16: OursResult; torchBf16: TwinResult | null }>();
    for (let rep = 1; rep <= repeats; rep++) {
      for (const { cfg, cost, dir: sub } of prepared) {
        const warmup = opts.warmup ?? cfg.warmup;
        const steps = opts.steps ?? cfg.steps;
        for (const threads of opts.threads) {
          log(`train-step: ${cfg.name} (${(cost.params / 1e6).toFixed(2)}M params, ${cost.tokens} tokens/step), ${threads} thread(s)` +
            (repeats > 1 ? `, run ${rep} of ${repeats}` : '') + '...');
          const ours = runOursChild({ config: cfg.name, threads, warmup, steps, profile: true, sharePrompt: true }, report.backend);
          const oursTwoRows = runOursChild({ config: cfg.name, threads, warmup, steps, profile: false, sharePrompt: false }, report.backend);
          const oursBf16 = runOursChild({ config: cfg.name, threads, warmup, steps, profile: false, sharePrompt: true, bf16: true }, report.backend);
          const twin = (bf16: boolean): TwinResult | null => {
            if (twinNote) return null;
            try {
              return runTwin(cfg, sub, threads, warmup, steps, bf16);
            } catch (e) {
              // one failed twin run should not throw away our measurements: the row says n/a and the log says why
              log(`train-step: ${(e as Error).message}`);
              return null;
            }
          };
          const torch = twin(false);
          const torchBf16 = twin(true);
          const key = `${cfg.name}/${threads}`;
          const prev = best.get(key);
          best.set(key, { ours: faster(prev?.ours, ours)!, oursTwoRows: faster(prev?.oursTwoRows, oursTwoRows)!,
            torch: faster(prev?.torch, torch), oursBf16: faster(prev?.oursBf16, oursBf16)!, torchBf16: faster(prev?.torchBf16, torchBf16) });
        }
      }
    }
    for (const { cfg, cost } of prepared) {
      for (const threads of opts.threads) {
        const { ours, oursTwoRows, torch, oursBf16, torchBf16 } = best.get(`${cfg.name}/${threads}`)!;
        const peak = opts.peakFlops(threads);
        const mfu = (ms: number): number | null => (peak ? cost.flops / (ms / 1000) / peak : null);
        report.rows.push({
          config: cfg.name, threads, ours, oursTwoRows, torch, oursBf16, torchBf16,
          ratio: torch ? ours.tokensPerSecCpu / torch.tokensPerSecCpu : null,
          wallRatio: torch ? ours.tokensPerSec / torch.tokensPerSec : null,
          ratioTwoRows: torch ? oursTwoRows.tokensPerSecCpu / torch.tokensPerSecCpu : null,
          mfuOurs: mfu(oursTwoRows.medianStepCpuMs), mfuOursShared: mfu(ours.medianStepCpuMs),
          mfuTorch: torch ? mfu(torch.medianStepCpuMs) : null,
          lossRelDiff: torch ? Math.abs(ours.firstLoss - torch.firstLoss) / Math.abs(torch.firstLoss) : null,
          gradNormRelDiff: torch ? Math.abs(ours.firstGradNorm - torch.firstGradNorm) / Math.abs(torch.firstGradNorm) : null,
        });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

// ------------------------------------------------------------------------------------------------ tables

const MB = 1024 * 1024;
const fmt = (x: number | null, digits = 1): string => (x === null ? 'n/a' : x.toFixed(digits));
const pct = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** Markdown table: header row, separator, rows */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const ratioText = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(2)}x`);

/** tokens/s and ms/step on the CPU clock (per thread), the wall clock in parentheses */
export function speedTable(report: TrainStepReport): string {
  const both = (cpu: number | null, wall: number | null, digits = 0): string =>
    cpu === null ? 'n/a' : `${fmt(cpu, digits)} (${fmt(wall, digits)})`;
  return markdownTable(
    ['config', 'threads', 'backend', 'ours tok/s', 'ours ms/step', 'ours two rows ms/step', 'PyTorch tok/s', 'PyTorch ms/step',
      'ours/PyTorch', 'ours two rows/PyTorch', 'MFU ours two rows', 'MFU PyTorch', 'first loss ours / PyTorch (rel. diff)'],
    report.rows.map((r) => [r.config, String(r.threads), `${r.ours.backend} (${r.ours.backendThreads} thr)`,
      both(r.ours.tokensPerSecCpu, r.ours.tokensPerSec), both(r.ours.medianStepCpuMs, r.ours.medianStepMs),
      both(r.oursTwoRows.medianStepCpuMs, r.oursTwoRows.medianStepMs),
      both(r.torch?.tokensPerSecCpu ?? null, r.torch?.tokensPerSec ?? null),
      both(r.torch?.medianStepCpuMs ?? null, r.torch?.medianStepMs ?? null),
      `${ratioText(r.ratio)} (${ratioText(r.wallRatio)})`, ratioText(r.ratioTwoRows), pct(r.mfuOurs), pct(r.mfuTorch),
      r.torch ? `${r.ours.firstLoss.toFixed(6)} / ${r.torch.firstLoss.toFixed(6)} (${r.lossRelDiff!.toExponential(1)})` : 'n/a']));
}

/** bf16 mixed precision: ours against our float32 step and against PyTorch under torch.autocast(bfloat16) */
export function bf16Table(report: TrainStepReport): string {
  return markdownTable(
    ['config', 'threads', 'ours bf16 ms/step', 'ours float32 ms/step', 'bf16 speed-up', 'PyTorch autocast bf16 ms/step',
      'ours/PyTorch (bf16)', 'first loss ours / PyTorch (bf16)'],
    report.rows.map((r) => [r.config, String(r.threads), `${fmt(r.oursBf16.medianStepCpuMs, 0)} (${fmt(r.oursBf16.medianStepMs, 0)})`,
      fmt(r.ours.medianStepCpuMs, 0), ratioText(r.ours.medianStepCpuMs / r.oursBf16.medianStepCpuMs),
      r.torchBf16 ? `${fmt(r.torchBf16.medianStepCpuMs, 0)} (${fmt(r.torchBf16.medianStepMs, 0)})` : 'n/a',
      r.torchBf16 ? ratioText(r.torchBf16.medianStepCpuMs / r.oursBf16.medianStepCpuMs) : 'n/a',
      r.torchBf16 ? `${r.oursBf16.firstLoss.toFixed(6)} / ${r.torchBf16.firstLoss.toFixed(6)}` : 'n/a']));
}

export function memoryTable(report: TrainStepReport): string {
  return markdownTable(
    ['config', 'threads', 'analytic MiB (params+grads+Adam+activations)', 'ours peak RSS MiB', 'ours RSS / analytic', 'ours (RSS - baseline) / analytic', 'PyTorch peak RSS MiB', 'PyTorch RSS - baseline MiB'],
    report.rows.map((r) => {
      const a = r.ours.analytic.totalBytes;
      return [r.config, String(r.threads),
        `${fmt(a / MB)} (${fmt((r.ours.analytic.paramBytes * 4) / MB)} + ${fmt(r.ours.analytic.activationBytes / MB)})`,
        fmt(r.ours.peakRssBytes / MB), `${(r.ours.peakRssBytes / a).toFixed(2)}x`,
        `${((r.ours.peakRssBytes - r.ours.baselineRssBytes) / a).toFixed(2)}x`,
        fmt(r.torch ? r.torch.peakRssBytes / MB : null),
        fmt(r.torch ? (r.torch.peakRssBytes - r.torch.baselineRssBytes) / MB : null)];
    }));
}

const KERNEL_GROUPS: Record<string, string> = {
  gemm: 'matmul', matmulForward: 'matmul', matmulBackward: 'matmul',
  attentionForward: 'attention', attentionBackward: 'attention',
  logprobForward: 'loss head (log-softmax)', logprobBackward: 'loss head (log-softmax)', logitsStats: 'loss head (log-softmax)',
  adamwStep: 'optimizer + clipping', sumSquares: 'optimizer + clipping', scale: 'optimizer + clipping',
  // buffer handling, not computation: at 2 threads their CPU time is mostly the helper thread spinning meanwhile
  ...Object.fromEntries(['view', 'viewInts', 'lengthOf', 'allocFloats', 'allocInts', 'free', 'upload', 'uploadInts',
    'download', 'downloadInts'].map((k) => [k, 'buffers (views, uploads, downloads, allocation)'])),
};

const OTHER_GROUP = 'elementwise/norm/rope/embed';

/**
 * Where one step's time goes, on the CPU clock (per thread), for each config at one thread count: by group, then
 * kernel by kernel; GFLOP/s for the kernels that do matrix work.
 */
export function profileTable(report: TrainStepReport, threads: number): string {
  const rows: string[][] = [];
  for (const r of report.rows.filter((x) => x.threads === threads && x.ours.profile)) {
    const p = r.ours.profile!;
    const groups = new Map<string, number>();
    let kernelMs = 0;
    for (const k of p.kernels) {
      kernelMs += k.cpuMs;
      const g = KERNEL_GROUPS[k.kernel] ?? OTHER_GROUP;
      groups.set(g, (groups.get(g) ?? 0) + k.cpuMs);
    }
    groups.set('outside kernels (JavaScript: the objective, row packing, bookkeeping)', p.stepCpuMs - kernelMs);
    for (const [g, ms] of [...groups].sort((a, b) => b[1] - a[1])) rows.push([r.config, `**${g}**`, '', fmt(ms), pct(ms / p.stepCpuMs), '']);
    for (const k of p.kernels) {
      rows.push([r.config, k.kernel, String(k.calls), fmt(k.cpuMs), pct(k.cpuMs / p.stepCpuMs),
        k.flops ? fmt(k.flops / (k.cpuMs / 1000) / 1e9) : '']);
    }
  }
  return markdownTable(['config', 'group / kernel', 'calls', 'CPU ms', 'share of step', 'GFLOP/s'], rows);
}

// ------------------------------------------------------------------------------------------------ child entry

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--child') {
  const baseline = process.memoryUsage().rss;
  const req = JSON.parse(process.argv[3]) as ChildRequest;
  process.stdout.write(JSON.stringify(await measureOurs(req, baseline)) + '\n');
}

/** cores Node sees (the machine line) */
export function coreCount(): number {
  return cpus().length;
}

export function readJson<T>(file: string): T | null {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null;
}
