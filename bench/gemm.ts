// GEMM benchmark for the native backend: first the machine's practical FMA peak (a tight loop of 12
// independent FMA chains in the addon, per thread count), then GEMM GFLOP/s for the large training shapes in
// each transpose combination, as a percentage of that peak. Prints a table, writes bench/out/gemm.json.
//
//   node dist/bench/gemm.js [--threads 1,2] [--reps 5]
//
// Timing on a shared machine: other processes take the cores away mid-run, which wall time counts and CPU time
// does not. So the headline rate divides the flops by the process's CPU time per thread (CPU seconds / threads,
// which still charges a thread that spins waiting for a slower one), the same clock the peak probe uses; the
// best wall-clock rate is reported beside it. Each is the best of `reps` runs after a warm-up.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNativeAddon, type NativeAddon } from '../src/backend/native/addon.js';

interface GemmRow {
  M: number; N: number; K: number; transA: boolean; transB: boolean; threads: number;
  /** flops / (CPU seconds / threads), best run */
  gflops: number;
  /** flops / wall seconds, best run */
  wallGflops: number;
  pctPeak: number;
}

/** c (M,N) = a (M,K) @ b (K,N): shapes of the forward and the two backward products of a linear layer */
const SHAPES: Array<[number, number, number]> = [[512, 512, 512], [1024, 1024, 1024], [2048, 768, 3072]];
const VARIANTS: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];

function randomBuffer(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** best CPU-time-per-thread and best wall time of `reps` runs, in seconds */
function timeGemm(addon: NativeAddon, M: number, N: number, K: number, transA: boolean, transB: boolean,
  threads: number, reps: number): { cpu: number; wall: number } {
  const a = randomBuffer(M * K);
  const b = randomBuffer(K * N);
  const c = new Float32Array(M * N);
  addon.gemm(c, a, b, M, N, K, transA, transB, false);
  let cpu = Infinity;
  let wall = Infinity;
  for (let r = 0; r < reps; r++) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    addon.gemm(c, a, b, M, N, K, transA, transB, false);
    const t1 = process.hrtime.bigint();
    const used = process.cpuUsage(cpu0);
    wall = Math.min(wall, Number(t1 - t0) * 1e-9);
    cpu = Math.min(cpu, (used.user + used.system) * 1e-6 / threads);
  }
  return { cpu, wall };
}

function variantName(transA: boolean, transB: boolean): string {
  return `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

function main(): void {
  const { values } = parseArgs({
    options: { threads: { type: 'string', default: '1,2' }, reps: { type: 'string', default: '5' } },
  });
  const threadCounts = values.threads.split(',').map(Number).filter((t) => t >= 1);
  const reps = Math.max(1, Number(values.reps));
  const load = loadNativeAddon();
  if (!load.ok) {
    console.log(`GEMM bench skipped: ${load.reason}`);
    return;
  }
  const addon = load.addon;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`GEMM benchmark: ${cpu}, ${cpus().length} cores, kernels ${addon.isa()}, node ${process.version}`);

  const peak = threadCounts.map((threads) => ({ threads, gflops: addon.fmaPeakGflops(threads) }));
  for (const p of peak) console.log(`FMA peak, ${p.threads} thread(s): ${p.gflops.toFixed(1)} GFLOP/s (CPU time)`);

  const rows: GemmRow[] = [];
  const before = addon.getThreads();
  for (const threads of threadCounts) {
    addon.setThreads(threads);
    const peakHere = peak.find((p) => p.threads === threads)?.gflops ?? NaN;
    for (const [M, N, K] of SHAPES) {
      for (const [transA, transB] of VARIANTS) {
        const { cpu, wall } = timeGemm(addon, M, N, K, transA, transB, threads, reps);
        const flops = 2 * M * N * K;
        const gflops = flops / cpu * 1e-9;
        rows.push({ M, N, K, transA, transB, threads, gflops, wallGflops: flops / wall * 1e-9,
          pctPeak: 100 * gflops / peakHere });
      }
    }
  }
  addon.setThreads(before);

  console.log('');
  console.log('| M x N x K | op | threads | GFLOP/s (CPU time) | % of FMA peak | GFLOP/s (wall) |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.M}x${r.N}x${r.K} | ${variantName(r.transA, r.transB)} | ${r.threads} | ${r.gflops.toFixed(1)} | `
      + `${r.pctPeak.toFixed(0)}% | ${r.wallGflops.toFixed(1)} |`);
  }

  const outDir = join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, 'gemm.json');
  writeFileSync(file, JSON.stringify({ machine: `${cpu}, ${cpus().length} cores`, isa: addon.isa(), node: process.version,
    peak, gemm: rows }, null, 2) + '\n');
  console.log(`\nwrote ${file}`);
}

main();
