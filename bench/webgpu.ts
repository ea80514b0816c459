// WebGPU micro-benchmark: the adapter, then GEMM GFLOP/s in every transpose for the CPU bench's shapes (plus
// 2048^3, the issue's target shape), and the flash attention forward/backward. On SwiftShader (a CPU Vulkan, what
// machines without a GPU get) the numbers say only that the kernels run: they are NOT a speed measurement.
// The training-step tokens/s and MFU come with step 2 (the model over backend buffers).
//
//   node dist/bench/webgpu.js [--shapes 512x512x512,...] [--reps 5] [--peak-tflops 67] [--swiftshader]
//
// --swiftshader reruns this script with the environment Dawn needs to find Debian chromium's SwiftShader (read at
// process start); small default shapes then. --peak-tflops: the adapter's fp32 peak (WebGPU does not report it),
// for a percentage column. Each rate is the best of `reps` timed batches of `inner` calls, one submission each,
// after a warm-up (which also compiles the pipelines). Writes bench/out/webgpu.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createNodeWebGpuBackend } from '../src/backend/webgpu/node-gpu.js';
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { gemmTile, type GemmTile } from '../src/backend/webgpu/kernel-table.js';

const SWIFTSHADER_DIR = '/usr/lib/chromium';
const GPU_SHAPES: Array<[number, number, number]> = [[512, 512, 512], [1024, 1024, 1024], [2048, 768, 3072], [2048, 2048, 2048]];
const SOFTWARE_SHAPES: Array<[number, number, number]> = [[128, 128, 128], [256, 256, 256]];
const VARIANTS: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];

interface GemmRow { M: number; N: number; K: number; op: string; tile: GemmTile; gflops: number; pctPeak: number | null }
interface AttentionRow { B: number; T: number; NH: number; NKV: number; HD: number; forwardMs: number; backwardMs: number; gflops: number }

function randomArray(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** best seconds per call of `record` over `reps` batches of `inner` calls (each batch one submission, synced) */
async function timeBatches(backend: WebGpuBackend, record: () => void, inner: number, reps: number): Promise<number> {
  record();
  await backend.runtime.sync(); // warm-up: pipelines compile here
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) record();
    await backend.runtime.sync();
    best = Math.min(best, (performance.now() - t0) / 1000 / inner);
  }
  return best;
}

function parseShapes(text: string | undefined, software: boolean): Array<[number, number, number]> {
  if (!text) return software ? SOFTWARE_SHAPES : GPU_SHAPES;
  return text.split(',').map((s) => {
    const dims = s.split('x').map(Number);
    if (dims.length !== 3 || dims.some((d) => !(Number.isInteger(d) && d > 0))) throw new Error(`bad shape ${s}: want MxNxK`);
    return [dims[0], dims[1], dims[2]];
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string' },
      reps: { type: 'string', default: '5' },
      'peak-tflops': { type: 'string' },
      swiftshader: { type: 'boolean', default: false },
    },
  });
  if (values.swiftshader && process.env.VK_ICD_FILENAMES === undefined) {
    if (!existsSync(SWIFTSHADER_DIR)) throw new Error(`--swiftshader: ${SWIFTSHADER_DIR} not found (Debian's chromium package)`);
    const child = spawnSync(process.execPath, process.argv.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, VK_ICD_FILENAMES: `${SWIFTSHADER_DIR}/vk_swiftshader_icd.json`,
        LD_LIBRARY_PATH: [SWIFTSHADER_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
    });
    process.exit(child.status ?? 1);
  }
  const reps = Number(values.reps);
  const peak = values['peak-tflops'] ? Number(values['peak-tflops']) * 1000 : null;
  const backend = await createNodeWebGpuBackend();
  const { runtime, kernels } = backend;
  const software = runtime.info.isSoftware;
  console.log(`adapter: ${runtime.info.adapter}${software ? '  [software (CPU) adapter: NOT a speed number]' : ''}`);
  console.log(`features: ${runtime.info.features.includes('shader-f16') ? 'shader-f16' : 'no shader-f16'}; ` +
    `max storage binding ${(runtime.info.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`);

  const gemm: GemmRow[] = [];
  for (const [M, N, K] of parseShapes(values.shapes, software)) {
    const a = runtime.fromArray(randomArray(M * K));
    const b = runtime.fromArray(randomArray(K * N));
    const c = runtime.alloc(M * N);
    const flops = 2 * M * N * K;
    const inner = Math.max(1, Math.min(50, Math.round((software ? 2e8 : 2e11) / flops)));
    // the kernel gemmTile picks first, then the others that apply (both tile sizes where the large one does, and the
    // barrier-free direct kernel): which is faster where is for a GPU to say
    const tiles = [...new Set<GemmTile>([gemmTile(M, N, K), ...(M >= 128 && N >= 128 ? [128, 64] as const : [64] as const), 'direct32', 'direct64'])];
    for (const tile of tiles) {
      kernels.setGemmTile(tile);
      for (const [transA, transB] of VARIANTS) {
        const seconds = await timeBatches(backend, () => kernels.gemm(c, a, b, M, N, K, transA, transB, false), inner, reps);
        const gflops = flops / seconds / 1e9;
        const row: GemmRow = { M, N, K, op: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, tile, gflops, pctPeak: peak ? (100 * gflops) / peak : null };
        gemm.push(row);
        console.log(`gemm ${M}x${N}x${K} ${row.op} tile ${tile}: ${gflops.toFixed(2)} GFLOP/s` +
          `${row.pctPeak !== null ? ` (${row.pctPeak.toFixed(1)}% of peak)` : ''}`);
      }
    }
    kernels.setGemmTile(null);
    for (const t of [a, b, c]) runtime.free(t);
  }

  // attention: a 30M-model-like layer (software: a small one)
  const attention: AttentionRow[] = [];
  const shapes = software ? [{ B: 1, T: 64, NH: 4, NKV: 2, HD: 32 }] : [{ B: 8, T: 512, NH: 8, NKV: 8, HD: 64 }, { B: 4, T: 1024, NH: 14, NKV: 2, HD: 64 }];
  for (const { B, T, NH, NKV, HD } of shapes) {
    const qStride = NH * HD;
    const kvStride = NKV * HD;
    const q = runtime.fromArray(randomArray(B * T * qStride));
    const k = runtime.fromArray(randomArray(B * T * kvStride));
    const v = runtime.fromArray(randomArray(B * T * kvStride));
    const out = runtime.alloc(B * T * NH * HD);
    const lse = runtime.alloc(B * NH * T);
    const dout = runtime.fromArray(randomArray(B * T * NH * HD));
    const dq = runtime.alloc(B * T * qStride);
    const dk = runtime.alloc(B * T * kvStride);
    const dv = runtime.alloc(B * T * kvStride);
    for (const t of [dq, dk, dv]) runtime.zero(t);
    const forward = await timeBatches(backend, () => kernels.attentionForward(out, lse, q, k, v, B, T, NH, NKV, HD, qStride, kvStride), 5, reps);
    const backward = await timeBatches(backend, () => kernels.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD, qStride, kvStride), 5, reps);
    // causal: half of the T^2 score matrix; forward 2 products, backward 5
    const flops = (7 * 2 * B * NH * T * T * HD) / 2;
    const row: AttentionRow = { B, T, NH, NKV, HD, forwardMs: forward * 1000, backwardMs: backward * 1000, gflops: flops / (forward + backward) / 1e9 };
    attention.push(row);
    console.log(`attention B=${B} T=${T} NH=${NH} NKV=${NKV} HD=${HD}: forward ${row.forwardMs.toFixed(2)} ms, backward ` +
      `${row.backwardMs.toFixed(2)} ms, ${row.gflops.toFixed(2)} GFLOP/s`);
    for (const t of [q, k, v, out, lse, dout, dq, dk, dv]) runtime.free(t);
  }

  const outDir = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, 'webgpu.json');
  writeFileSync(file, JSON.stringify({ adapter: runtime.info.adapter, software, peakGflops: peak, gemm, attention }, null, 2));
  console.log(`wrote ${file}`);
  runtime.destroy();
}

await main();
