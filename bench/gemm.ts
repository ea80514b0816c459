// GEMM benchmark for the native backend: first the machine's practical FMA peak (a tight loop of 12
// independent FMA chains in the addon, per thread count), then GEMM GFLOP/s for the large training shapes in
// each transpose combination, as a percentage of that peak, in float32 and in bf16 (the bf16 option: operands
// rounded to bf16, float32 sums) side by side. Prints a table, writes bench/out/gemm.json.
//
//   node dist/bench/gemm.js [--threads 1,2] [--reps 5] [--bf16 auto|all|none] [--blocks derived,fixed,KCxMCxNC]
//                           [--products bench|train|all]
//
// Unless --bf16 none, a second table (on the probe's bf16 path, or each path with --bf16 all) times a frozen bf16 weight (matmulForwardBf16 / matmulBackwardBf16, the weight
// read from its bf16 bits) against bf16 mode on the same weight widened to float32 (matmulForward / matmulBackward
// with setMatmulBf16(true)): the same products and numbers, so the rates show what packing from bf16 costs or saves.
// Shapes: a Qwen2.5-0.5B MLP up projection (896 -> 4864) over 1024 token rows, and one row (decoding).
//
// --bf16: auto (default) adds one bf16 row per product on the path the addon's probe chose here; all adds one per
// bf16 path this CPU has (fma: bf16-rounded operands through the float32 kernel; dpbf16: VDPBF16PS), none only
// float32. --blocks: the cache blocks to compare, each a row (derived = from the detected cache sizes, the
// default; fixed = the constants the blocks were before they were derived; or explicit KCxMCxNC such as 512x96x1024),
// e.g. `--blocks fixed,derived` for old against new in one run. --products: bench (default: three shapes in every
// transpose combination), train (the train-step bench's own products), all, or none (only the bf16-weight table below).
//
// Timing on a shared machine: other processes take the cores away mid-run, which wall time counts and CPU time
// does not. So the headline rate divides the flops by the process's CPU time per thread (CPU seconds / threads,
// which still charges a thread that spins waiting for a slower one), the same clock the peak probe uses; the
// best wall-clock rate is reported beside it. Each is the best of `reps` runs after a warm-up, the variants of one
// product (dtype, bf16 path, blocks) taking turns in each round so a slow minute on a shared machine hits them all.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNativeAddon, type NativeAddon, type NativeKernelInfo } from '../src/backend/native/addon.js';
import { Bf16Buffer, bf16Carrier } from '../src/backend/kernels.js';
import { bf16ToF32, f32ToBf16 } from '../src/tensor/dtype.js';

/** One bf16-weight product against bf16 mode on the widened weight (see the header) */
export interface Bf16WeightRow {
  /** token rows, input and output features of the linear layer */
  N: number; C: number; OC: number; threads: number;
  pass: 'forward' | 'backward';
  bf16Kernel: string;
  /** GFLOP/s (CPU time) of bf16 mode on the float32 widened weight, and of the bf16 weight */
  modeGflops: number;
  weightGflops: number;
}

/** One measured product: its shape, how it ran, and the rates */
export interface GemmRow {
  M: number; N: number; K: number; transA: boolean; transB: boolean; threads: number;
  /** 'f32', or 'bf16' (the bf16 option) */
  dtype: 'f32' | 'bf16';
  /** the bf16 path ('fma' or 'dpbf16'); null for float32 */
  bf16Kernel: string | null;
  /** the cache blocks as KC,MC,NC and where they came from ('cache sizes', 'fixed', 'set') */
  blocks: string;
  /** flops / (CPU seconds / threads), best run */
  gflops: number;
  /** flops / wall seconds, best run */
  wallGflops: number;
  pctPeak: number;
}

interface Variant {
  dtype: 'f32' | 'bf16';
  bf16Kernel: 'fma' | 'dpbf16' | 'amx' | null;
  blocks: string;
}

/** c (M,N) = op(a) (M,K) @ op(b) (K,N) */
type Product = [M: number, N: number, K: number, transA: boolean, transB: boolean];

/** square-ish shapes of a linear layer's products, in every transpose combination (the default) */
const BENCH_PRODUCTS: Product[] = [[512, 512, 512], [1024, 1024, 1024], [2048, 768, 3072]].flatMap(([M, N, K]) =>
  [[false, false], [false, true], [true, false], [true, true]].map(([ta, tb]) => [M, N, K, ta, tb] as Product));

/**
 * the products of the train-step bench's 30M and 5M steps (2048 and 1024 token rows): each linear layer's forward
 * (x W^T: NT), input gradient (dout W: NN) and weight gradient (dout^T x: TN), and the lm head's (vocab 8192)
 */
const TRAIN_PRODUCTS: Product[] = [
  [2048, 1536, 512, false, true], [2048, 512, 1536, false, false], [1536, 512, 2048, true, false],
  [2048, 8192, 512, false, true], [2048, 512, 8192, false, false], [8192, 512, 2048, true, false],
  [1024, 512, 192, false, true], [1024, 192, 512, false, false], [512, 192, 1024, true, false],
  [1024, 8192, 192, false, true],
];

function randomBuffer(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

function variantName(transA: boolean, transB: boolean): string {
  return `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

/** the variants to run: every block choice, each in float32 and in the bf16 paths asked for */
function variantsOf(info: NativeKernelInfo, bf16: string, blocks: string[]): Variant[] {
  const paths: Array<'fma' | 'dpbf16' | 'amx'> = bf16 === 'none' ? [] : bf16 === 'all'
    ? ['fma', ...(info.bf16.dpbf16 ? ['dpbf16' as const] : []), ...(info.bf16.amx ? ['amx' as const] : [])]
    : [info.bf16.kernel];
  return blocks.flatMap((b) => [
    { dtype: 'f32' as const, bf16Kernel: null, blocks: b },
    ...paths.map((p) => ({ dtype: 'bf16' as const, bf16Kernel: p, blocks: b })),
  ]);
}

/** runs one product once under `v`; returns CPU seconds per thread and wall seconds */
function timeOnce(addon: NativeAddon, v: Variant, bufs: Float32Array[], M: number, N: number, K: number,
  transA: boolean, transB: boolean, threads: number): { cpu: number; wall: number } {
  addon.configureGemm(v.bf16Kernel ?? 'auto', v.blocks);
  addon.setMatmulBf16(v.dtype === 'bf16');
  const [a, b, c] = bufs;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  addon.gemm(c, a, b, M, N, K, transA, transB, false);
  const t1 = process.hrtime.bigint();
  const used = process.cpuUsage(cpu0);
  return { cpu: (used.user + used.system) * 1e-6 / threads, wall: Number(t1 - t0) * 1e-9 };
}

/** the bench's description of the addon's plan: blocks and bf16 path, for the header and the machine line */
export function planLine(info: NativeKernelInfo): string {
  const kib = (b: number): string => b >= 1 << 20 ? `${+(b / (1 << 20)).toFixed(1)} MiB` : `${Math.round(b / 1024)} KiB`;
  const c = info.cache;
  const caches = c.source === 'none' ? 'cache sizes not detected'
    : `L1d ${kib(c.l1d)}, L2 ${kib(c.l2)}, L3 ${c.l3 ? kib(c.l3) : 'none'}${c.l3Sharing ? ` shared by ${c.l3Sharing}` : ''} (${c.source})`;
  const g = info.gemm;
  const p = info.bf16.probeGflops;
  const probe = `probe on 1 thread: f32 ${p.f32.toFixed(0)}, bf16 fma ${p.fma.toFixed(0)}` +
    (info.bf16.dpbf16 ? `, bf16 dpbf16 ${p.dpbf16.toFixed(0)}` : '') +
    (info.bf16.amx ? `, bf16 amx ${p.amx.toFixed(0)}` : '') + ' GFLOP/s';
  return `${caches}; GEMM ${g.mr}x${g.nr} micro-tile, blocks KC ${g.kc} MC ${g.mc} NC ${g.nc} (${g.blocks}); ` +
    `bf16 path ${info.bf16.kernel} (${info.bf16.source}; ${probe})`;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      threads: { type: 'string', default: '1,2' },
      reps: { type: 'string', default: '5' },
      bf16: { type: 'string', default: 'auto' },
      blocks: { type: 'string', default: 'derived' },
      products: { type: 'string', default: 'bench' },
    },
  });
  const threadCounts = values.threads.split(',').map(Number).filter((t) => t >= 1);
  const reps = Math.max(1, Number(values.reps));
  if (!['auto', 'all', 'none'].includes(values.bf16)) throw new Error(`--bf16 ${values.bf16}: want auto, all or none`);
  const products = { bench: BENCH_PRODUCTS, train: TRAIN_PRODUCTS, all: [...BENCH_PRODUCTS, ...TRAIN_PRODUCTS], none: [] }[values.products];
  if (!products) throw new Error(`--products ${values.products}: want bench, train, all or none`);
  const blockChoices = values.blocks.split(',').filter((b) => b.length > 0).map((b) => /^\d+x\d+x\d+$/.test(b) ? b.replaceAll('x', ',') : b);
  const load = loadNativeAddon();
  if (!load.ok) {
    console.log(`GEMM bench skipped: ${load.reason}`);
    return;
  }
  const addon = load.addon;
  const info = addon.kernelInfo();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`GEMM benchmark: ${cpu}, ${cpus().length} cores, kernels ${addon.isa()}, node ${process.version}`);
  console.log(planLine(info));

  const peak = threadCounts.map((threads) => ({ threads, gflops: addon.fmaPeakGflops(threads) }));
  for (const p of peak) console.log(`FMA peak, ${p.threads} thread(s): ${p.gflops.toFixed(1)} GFLOP/s (CPU time)`);

  const variants = variantsOf(info, values.bf16, blockChoices);
  const blocksText = new Map<string, string>();
  for (const b of blockChoices) {
    addon.configureGemm(null, b);
    const g = addon.kernelInfo().gemm;
    blocksText.set(b, `${g.kc},${g.mc},${g.nc} (${g.blocks})`);
  }
  const rows: GemmRow[] = [];
  const before = addon.getThreads();
  try {
    for (const threads of threadCounts) {
      addon.setThreads(threads);
      const peakHere = peak.find((p) => p.threads === threads)?.gflops ?? NaN;
      for (const [M, N, K, transA, transB] of products) {
        const bufs = [randomBuffer(M * K), randomBuffer(K * N), new Float32Array(M * N)];
        const best = variants.map(() => ({ cpu: Infinity, wall: Infinity }));
        for (const v of variants) timeOnce(addon, v, bufs, M, N, K, transA, transB, threads); // warm-up
        for (let r = 0; r < reps; r++) {
          for (let i = 0; i < variants.length; i++) {
            const vi = (i + r) % variants.length; // each variant goes first in turn
            const t = timeOnce(addon, variants[vi], bufs, M, N, K, transA, transB, threads);
            best[vi].cpu = Math.min(best[vi].cpu, t.cpu);
            best[vi].wall = Math.min(best[vi].wall, t.wall);
          }
        }
        const flops = 2 * M * N * K;
        variants.forEach((v, i) => {
          const gflops = flops / best[i].cpu * 1e-9;
          rows.push({ M, N, K, transA, transB, threads, dtype: v.dtype, bf16Kernel: v.bf16Kernel,
            blocks: blocksText.get(v.blocks) ?? v.blocks, gflops, wallGflops: flops / best[i].wall * 1e-9,
            pctPeak: 100 * gflops / peakHere });
        });
      }
    }
  } finally {
    addon.setThreads(before);
    addon.setMatmulBf16(false);
    addon.configureGemm('auto', process.env.ORPO_GEMM_BLOCKS || 'derived');
  }

  const showBlocks = blockChoices.length > 1;
  console.log('');
  console.log(`| M x N x K | op | threads | dtype |${showBlocks ? ' blocks |' : ''} GFLOP/s (CPU time) | % of FMA peak | GFLOP/s (wall) |`);
  console.log(`|---|---|---|---|${showBlocks ? '---|' : ''}---|---|---|`);
  for (const r of rows) {
    console.log(`| ${r.M}x${r.N}x${r.K} | ${variantName(r.transA, r.transB)} | ${r.threads} | ${dtypeName(r)} |` +
      `${showBlocks ? ` ${r.blocks} |` : ''} ${r.gflops.toFixed(1)} | ${r.pctPeak.toFixed(0)}% | ${r.wallGflops.toFixed(1)} |`);
  }
  const summary = summarise(rows);
  if (summary) console.log(`\n${summary}`);

  // the bf16 paths of the float32 table's bf16 rows: the probe's, or each this CPU has with --bf16 all
  const weightPaths = [...new Set(variants.flatMap((v) => v.bf16Kernel ? [v.bf16Kernel] : []))];
  const weightRows = benchBf16Weights(addon, threadCounts, reps, weightPaths);
  if (weightRows.length) {
    console.log('\nfrozen bf16 weight (matmul*Bf16) against bf16 mode on the widened float32 weight, GFLOP/s (CPU time):');
    console.log('| N x C -> OC | pass | threads | bf16 path | bf16 mode, f32 weight | bf16 weight | ratio |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of weightRows) {
      console.log(`| ${r.N}x${r.C}->${r.OC} | ${r.pass} | ${r.threads} | ${r.bf16Kernel} | ${r.modeGflops.toFixed(1)} | ` +
        `${r.weightGflops.toFixed(1)} | ${(r.weightGflops / r.modeGflops).toFixed(2)}x |`);
    }
  }

  const outDir = join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, 'gemm.json');
  writeFileSync(file, JSON.stringify({ machine: `${cpu}, ${cpus().length} cores`, isa: addon.isa(), plan: planLine(info),
    kernelInfo: info, node: process.version, peak, gemm: rows, bf16Weight: weightRows }, null, 2) + '\n');
  console.log(`\nwrote ${file}`);
}

/** N x C -> OC linear layers timed with a bf16 weight and with bf16 mode on its widened copy */
const BF16_WEIGHT_SHAPES: Array<[N: number, C: number, OC: number]> = [[1024, 896, 4864], [1, 896, 4864]];

/**
 * The bf16-weight table: per shape and pass, bf16 mode (matmulForward/Backward on the widened float32 weight) and
 * the bf16 weight (matmulForwardBf16/BackwardBf16) taking turns, best CPU-time rate of `reps` after a warm-up.
 */
function benchBf16Weights(addon: NativeAddon, threadCounts: number[], reps: number,
  paths: Array<'fma' | 'dpbf16' | 'amx'>): Bf16WeightRow[] {
  const rows: Bf16WeightRow[] = [];
  const before = addon.getThreads();
  try {
    for (const threads of threadCounts) for (const kernel of paths) {
      addon.configureGemm(kernel, null);
      addon.setThreads(threads);
      for (const [N, C, OC] of BF16_WEIGHT_SHAPES) {
        const bits = f32ToBf16(randomBuffer(OC * C));
        const weight = new Bf16Buffer(bf16Carrier(bits), bits.length);
        const wide = bf16ToF32(bits);
        const inp = randomBuffer(N * C);
        const out = new Float32Array(N * OC);
        const dout = randomBuffer(N * OC);
        const dinp = new Float32Array(N * C);
        for (const pass of ['forward', 'backward'] as const) {
          const run = [
            () => {
              addon.setMatmulBf16(true);
              if (pass === 'forward') addon.matmulForward(out, inp, wide, null, N, C, OC);
              else addon.matmulBackward(dinp, null, null, dout, inp, wide, N, C, OC, true);
              addon.setMatmulBf16(false);
            },
            () => {
              if (pass === 'forward') addon.matmulForwardBf16(out, inp, weight, null, N, C, OC);
              else addon.matmulBackwardBf16(dinp, dout, weight, N, C, OC, true);
            },
          ];
          const best = [Infinity, Infinity];
          // one row is a few microseconds: repeat it so each timing spans well over the clock's resolution
          const calls = N <= 4 ? 200 : 1;
          for (let r = 0; r <= reps; r++) {
            for (let i = 0; i < 2; i++) {
              const vi = (i + r) % 2;
              const cpu0 = process.cpuUsage();
              for (let c = 0; c < calls; c++) run[vi]();
              const used = process.cpuUsage(cpu0);
              if (r > 0) best[vi] = Math.min(best[vi], (used.user + used.system) * 1e-6 / threads / calls); // r 0: warm-up
            }
          }
          const flops = 2 * N * C * OC;
          rows.push({ N, C, OC, threads, pass, bf16Kernel: kernel, modeGflops: flops / best[0] * 1e-9,
            weightGflops: flops / best[1] * 1e-9 });
        }
      }
    }
  } finally {
    addon.setThreads(before);
    addon.setMatmulBf16(false);
    addon.configureGemm('auto', null);
  }
  return rows;
}

export function dtypeName(r: Pick<GemmRow, 'dtype' | 'bf16Kernel'>): string {
  return r.dtype === 'bf16' ? `bf16 (${r.bf16Kernel})` : 'f32';
}

/** geometric means of each variant over the products, per thread count: the one-line answer to "which is faster" */
export function summarise(rows: GemmRow[]): string | null {
  const groups = new Map<string, number[]>();
  for (const r of rows) {
    const key = `${r.threads} thread${r.threads > 1 ? 's' : ''}: ${dtypeName(r)}${new Set(rows.map((x) => x.blocks)).size > 1 ? `, blocks ${r.blocks}` : ''}`;
    groups.set(key, [...(groups.get(key) ?? []), r.gflops]);
  }
  if (groups.size < 2) return null;
  return 'geometric mean GFLOP/s (CPU time) over the products: ' + [...groups].map(([k, v]) =>
    `${k} ${Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length).toFixed(1)}`).join('; ');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
