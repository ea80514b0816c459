// `npm run bench`: the GEMM benchmark (bench/gemm, when built: float32 and bf16 side by side) then the ORPO
// training-step benchmark against the PyTorch twin; prints the tables and writes bench/out/train-step.json and
// bench/out/train-step.md.
//
//   node dist/bench/run.js [--configs 5M,30M,5M-hh] [--threads 1,2] [--warmup N] [--steps N] [--repeats 2] [--no-twin] [--no-gemm]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getKernels } from '../src/backend/index.js';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { dtypeName, planLine, summarise, type GemmRow } from './gemm.js';
import { parseArgs } from 'node:util';
import {
  BENCH_CONFIGS, MICRO_CONFIG, coreCount, findConfig, markdownTable, memoryTable, outDir, profileTable, readJson, repoRoot, runTrainStepBench,
  speedTable, bf16Table, type TrainStepReport,
} from './train-step.js';

/** The FMA peak the GEMM bench measured, FLOP/s by thread count; null where it has no number. */
export type PeakTable = Map<number, number>;

/**
 * Reads the peak from bench/out/gemm.json. Accepts `peak: [{threads, gflops}]` or `peak: {"1": gflops}` (and the
 * same under `peaks`/`fmaPeak`), so the GEMM bench's file is the one place the peak is measured.
 */
export function readPeak(file: string): PeakTable {
  const peaks: PeakTable = new Map();
  const json = readJson<Record<string, unknown>>(file);
  if (!json) return peaks;
  const raw = json.peak ?? json.peaks ?? json.fmaPeak;
  const gflopsOf = (v: unknown): number | null => {
    if (typeof v === 'number') return v;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      for (const k of ['gflops', 'GFLOPs', 'gflopsPerSec', 'peakGflops']) if (typeof o[k] === 'number') return o[k] as number;
    }
    return null;
  };
  if (Array.isArray(raw)) {
    for (const e of raw) {
      const t = (e as Record<string, unknown>).threads;
      const g = gflopsOf(e);
      if (typeof t === 'number' && g) peaks.set(t, g * 1e9);
    }
  } else if (raw && typeof raw === 'object') {
    for (const [t, v] of Object.entries(raw)) {
      const g = gflopsOf(v);
      if (g && Number.isFinite(Number(t))) peaks.set(Number(t), g * 1e9);
    }
  }
  return peaks;
}

/** bench/out/gemm.json as a markdown table (the GEMM bench prints its own; this one goes into the results file) */
export function gemmTable(file: string): string | null {
  // rows written before the bench measured bf16 have no dtype: they are float32
  const json = readJson<{ isa?: string; plan?: string; gemm?: Array<Partial<GemmRow> & Omit<GemmRow, 'dtype' | 'bf16Kernel' | 'blocks'>> }>(file);
  if (!json?.gemm?.length) return null;
  const rows: GemmRow[] = json.gemm.map((r) => ({ ...r, dtype: r.dtype ?? 'f32', bf16Kernel: r.bf16Kernel ?? null, blocks: r.blocks ?? '' }));
  const op = (r: GemmRow): string => `${r.transA ? 'T' : 'N'}${r.transB ? 'T' : 'N'}`;
  const showBlocks = new Set(rows.map((r) => r.blocks)).size > 1;
  const summary = summarise(rows);
  return `kernels: ${json.isa ?? '?'}${json.plan ? `; ${json.plan}` : ''}\n\n` + markdownTable(
    ['M x N x K', 'op', 'threads', 'dtype', ...(showBlocks ? ['blocks KC,MC,NC'] : []), 'GFLOP/s (CPU clock)', '% of FMA peak', 'GFLOP/s (wall)'],
    rows.map((r) => [`${r.M}x${r.N}x${r.K}`, op(r), String(r.threads), dtypeName(r), ...(showBlocks ? [r.blocks] : []),
      r.gflops.toFixed(1), `${r.pctPeak.toFixed(0)}%`, r.wallGflops.toFixed(1)])) + (summary ? `\n\n${summary}` : '');
}

/**
 * CPU, cores, node, backend, the twin, and how our kernels run here: the detected cache sizes, the GEMM blocks they
 * gave and the bf16 path the probe chose (with its single-thread rates), so a row says which kernels produced it.
 */
export function machineLine(report: TrainStepReport): string {
  let cpu = 'unknown CPU';
  let flags = '';
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? cpu;
    // the flags that decide our kernels and PyTorch's: which vector and matrix units this CPU has
    const have = new Set(/^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? []);
    flags = ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16'].filter((f) => have.has(f)).join(' ');
  } catch { /* not Linux */ }
  const twin = report.rows.find((r) => r.torch)?.torch;
  const torch = twin ? `torch ${twin.torchVersion} (${twin.blas})` : `torch: ${report.twinNote ?? 'not run'}`;
  const load = report.backend === 'native' ? loadNativeAddon() : null;
  const plan = load?.ok ? `; ${load.addon.isa()} kernels: ${planLine(load.addon.kernelInfo())}` : '';
  return `${cpu}${flags ? ` (${flags})` : ''}, ${coreCount()} cores, node ${process.version}, backend ${report.backend}, ${torch}${plan}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      configs: { type: 'string', default: BENCH_CONFIGS.map((c) => c.name).join(',') },
      threads: { type: 'string', default: '1,2' },
      warmup: { type: 'string' },
      repeats: { type: 'string', default: '2' },
      steps: { type: 'string' },
      'no-twin': { type: 'boolean', default: false },
      'no-gemm': { type: 'boolean', default: false },
      'allow-js': { type: 'boolean', default: false },
    },
  });
  const configs = values.configs!.split(',').map((n) => findConfig(n.trim()));
  const backend = getKernels().name;
  if (backend === 'js' && !values['allow-js'] && configs.some((c) => c !== MICRO_CONFIG)) {
    // the TypeScript backend runs ~1 GFLOP/s: a 30M step is minutes, the whole bench an hour
    console.error('train-step bench: the native addon is not loaded, so the TypeScript backend would run (~75 s per 5M step). ' +
      'Build it (npm rebuild) or pass --allow-js to measure the TypeScript backend anyway.');
    process.exit(1);
  }
  mkdirSync(outDir, { recursive: true });
  const gemmScript = join(repoRoot, 'dist', 'bench', 'gemm.js');
  if (!values['no-gemm'] && existsSync(gemmScript)) {
    console.log('## GEMM\n');
    const r = spawnSync(process.execPath, [gemmScript], { stdio: 'inherit' });
    if (r.status !== 0) console.log(`(the GEMM bench exited with status ${r.status}; MFU uses whatever peak it left)`);
  } else if (!values['no-gemm']) {
    console.log('(bench/gemm is not built: no GEMM table and no measured FMA peak, so no MFU)');
  }
  const gemmJson = join(outDir, 'gemm.json');
  const peaks = readPeak(gemmJson);
  const report = await runTrainStepBench({
    configs,
    threads: values.threads!.split(',').map(Number),
    warmup: values.warmup === undefined ? undefined : Number(values.warmup),
    steps: values.steps === undefined ? undefined : Number(values.steps),
    peakFlops: (t) => peaks.get(t) ?? null,
    peakSource: peaks.size ? `${gemmJson}: ${[...peaks].map(([t, p]) => `${t} thr ${(p / 1e9).toFixed(1)} GFLOP/s`).join(', ')}` : null,
    noTwin: values['no-twin'],
    repeats: Number(values.repeats),
  });
  const threads = [...new Set(report.rows.map((r) => r.threads))];
  const gemm = gemmTable(gemmJson);
  const md = [
    `Machine: ${machineLine(report)}`,
    `FMA peak for MFU: ${report.peakSource ?? 'not measured (no bench/out/gemm.json)'}`,
    ...(gemm ? ['', '### GEMM (bench/gemm)', '', gemm] : []),
    '', '### ORPO training step (forward, backward, clip, AdamW), float32', '', speedTable(report),
    '', '"ours": one row per pair with the prompt computed once (share_prompt, the default); "two rows": TRL\'s layout, ' +
      'the same work as the twin. MFU counts the model FLOPs of the two-row step. Each cell is the fastest median of ' +
      `${values.repeats} side-by-side runs of that implementation (--repeats).`,
    ...report.configs.filter((c) => c.note).map((c) => `${c.name}: ${c.note}.`),
    '', '### bf16 mixed precision (the bf16 option; the twin under torch.autocast(bfloat16)), CPU clock (wall)', '', bf16Table(report),
    '', '### Peak memory (RSS of a fresh process per row)', '', memoryTable(report),
    ...threads.flatMap((t) => ['', `### Where our step's time goes (${t} thread${t > 1 ? 's' : ''}, one profiled step)`, '', profileTable(report, t)]),
  ].join('\n');
  console.log('\n' + md + '\n');
  writeFileSync(join(outDir, 'train-step.json'), JSON.stringify({ machine: machineLine(report), ...report }, null, 2) + '\n');
  writeFileSync(join(outDir, 'train-step.md'), md + '\n');
  console.log(`wrote ${join(outDir, 'train-step.json')} and train-step.md`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
