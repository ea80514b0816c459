// Runs every WebGPU kernel against the TypeScript reference backend and prints one JSON line per case, then a
// summary line. `node dist/test/webgpu/parity-runner.js [regexp]` (with ORPO_WEBGPU_PARITY=1 and an adapter) runs
// the cases whose names match. Started by test/webgpu-kernels.test.ts in a child process, because Dawn finds SwiftShader (the
// CPU Vulkan this machine has instead of a GPU) only through environment variables read at process start.
//
// Each case names host buffers and one kernel call written once: buffer arguments are `ref(name, offset)`, the
// rest plain values. The reference runs on Float32Array subarrays, the GPU on tensor views of the same layout;
// bfloat16 weights (`bf16Buffers`, bit patterns) are uploaded with uploadBf16 to each backend and passed as
// `bf16Ref(name, offset)` (viewBf16: an even offset); they are inputs only. Then every float and int buffer is downloaded and compared: |gpu - ref| <= rtol * (|ref| + mean|ref|) (relative where values
// are large, relative to the output's typical size where float32 cancellation makes a value small); int32
// outputs must match exactly. The reference sums in float64, the GPU in float32: rtol is 1e-5 unless a case says.
import { jsKernels } from '../../src/backend/js/kernels.js';
import { allocBf16, uploadBf16, viewBf16, type Backend, type Bf16Buffer, type Kernels } from '../../src/backend/kernels.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import type { GpuTensor } from '../../src/backend/webgpu/buffers.js';
import { createNodeWebGpuBackend } from '../../src/backend/webgpu/node-gpu.js';
import type { WebGpuKernels } from '../../src/backend/webgpu/kernels.js';
import type { KernelSpec, WebGpuRuntime } from '../../src/backend/webgpu/runtime.js';
import type { GemmTile } from '../../src/backend/webgpu/kernel-table.js';
import { randomInputs } from '../helpers/random-inputs.js';

// ------------------------------------------------------------------------------------------------ inputs

const { random, randn, randInts } = randomInputs(2026);

/** a positive array (variances, rstd) */
function positive(n: number): Float32Array {
  return Float32Array.from(randn(n), (x) => 0.5 + Math.abs(x));
}

// ------------------------------------------------------------------------------------------------ cases

interface BufferRef {
  readonly ref: string;
  readonly offset: number;
}
const ref = (name: string, offset = 0): BufferRef => ({ ref: name, offset });
interface Bf16Ref {
  readonly bf16: string;
  readonly offset: number;
}
const bf16Ref = (name: string, offset = 0): Bf16Ref => ({ bf16: name, offset });
type Arg = BufferRef | Bf16Ref | number | boolean | null;
type KernelName = Exclude<keyof Kernels & keyof WebGpuKernels, 'name' | 'setThreads' | 'getThreads' | 'setMatmulBf16' | 'getMatmulBf16'>;

interface Case {
  readonly name: string;
  readonly buffers: Record<string, Float32Array | Int32Array>;
  /** bfloat16 bit patterns, passed as Bf16Buffer views (bf16Ref) */
  readonly bf16Buffers?: Record<string, Uint16Array>;
  readonly kernel: KernelName;
  readonly args: readonly Arg[];
  readonly rtol?: number;
  readonly bf16?: boolean;
  /** the GEMM kernel to force (default: chosen by shape, see gemmTile) */
  readonly gemmTile?: GemmTile;
  /** the attention form to force (default: chosen by key count, see attentionDirect) */
  readonly attentionDirect?: boolean;
  /**
   * the CPU adapter's forms (WebGpuKernels.setBarrierFree: one thread per row at any width, direct GEMM and
   * attention); default false: the GPU's choices by shape, so that SwiftShader runs every size class
   */
  readonly barrierFree?: boolean;
}

const cases: Case[] = [];
const add = (c: Case): void => { cases.push(c); };

// gemm: every transpose / accumulate combination on odd shapes, one K of 0, on each of the four kernels (direct
// with 4x4 and 8x8 outputs per thread, tiles of 64 and of 128: gemmTile picks by shape, these force each)
const GEMM_KERNELS: readonly GemmTile[] = ['direct32', 'direct64', 64, 128];
for (const gemmTile of GEMM_KERNELS) {
  for (const [M, N, K] of [[1, 1, 1], [7, 63, 65], [63, 65, 127], [65, 127, 63], [33, 129, 300], [5, 3, 0], [129, 200, 37], [257, 130, 9]]) {
    for (const transA of [false, true]) for (const transB of [false, true]) for (const accumulate of [false, true]) {
      add({ name: `gemm[${gemmTile}] ${M}x${N}x${K} tA=${transA} tB=${transB} acc=${accumulate}`, kernel: 'gemm', rtol: 2e-5, gemmTile,
        buffers: { c: randn(M * N), a: randn(M * K), b: randn(K * N) },
        args: [ref('c'), ref('a'), ref('b'), M, N, K, transA, transB, accumulate] });
    }
  }
  for (const [transA, transB] of [[false, false], [true, true], [false, true]]) {
    const [M, N, K] = [33, 65, 127];
    add({ name: `gemm[${gemmTile}] bf16 ${M}x${N}x${K} tA=${transA} tB=${transB}`, kernel: 'gemm', bf16: true, rtol: 2e-5, gemmTile,
      buffers: { c: randn(M * N), a: randn(M * K), b: randn(K * N) },
      args: [ref('c'), ref('a'), ref('b'), M, N, K, transA, transB, true] });
  }
  // views with offsets: c, a, b start inside larger buffers
  add({ name: `gemm[${gemmTile}] on offset views`, kernel: 'gemm', rtol: 2e-5, gemmTile,
    buffers: { c: randn(5 + 7 * 9), a: randn(3 + 7 * 11), b: randn(1 + 11 * 9) },
    args: [ref('c', 5), ref('a', 3), ref('b', 1), 7, 9, 11, false, false, true] });
}

// (300x130 -> 140 is past GEMM_DIRECT_MAX_MACS: the tiled kernel by default)
for (const [N, C, OC] of [[7, 65, 33], [1, 3, 5], [70, 129, 67], [200, 5, 9], [300, 130, 140]]) {
  for (const bias of [true, false]) {
    add({ name: `matmulForward ${N}x${C}->${OC} bias=${bias}`, kernel: 'matmulForward', rtol: 2e-5,
      buffers: { out: randn(N * OC), inp: randn(N * C), weight: randn(OC * C), bias: randn(OC) },
      args: [ref('out'), ref('inp'), ref('weight'), bias ? ref('bias') : null, N, C, OC] });
  }
  // acc: dinp accumulated or written (dweight and dbias always accumulate)
  for (const [di, dw, db, acc] of [[true, true, true, true], [true, false, false, true], [false, true, true, true], [false, false, true, true],
    [true, true, true, false], [true, false, false, false]]) {
    add({ name: `matmulBackward ${N}x${C}->${OC} dinp=${di} dweight=${dw} dbias=${db} accumulate=${acc}`, kernel: 'matmulBackward', rtol: 2e-5,
      buffers: { dinp: randn(N * C), dweight: randn(OC * C), dbias: randn(OC), dout: randn(N * OC), inp: randn(N * C), weight: randn(OC * C) },
      args: [di ? ref('dinp') : null, dw ? ref('dweight') : null, db ? ref('dbias') : null, ref('dout'), ref('inp'), ref('weight'), N, C, OC, acc] });
  }
}

// embeddings: repeated ids (the scatter-add must sum them), both forward modes
for (const [N, C, V] of [[13, 7, 5], [70, 33, 300]]) {
  for (const accumulate of [false, true]) {
    add({ name: `embeddingForward N=${N} C=${C} V=${V} acc=${accumulate}`, kernel: 'embeddingForward',
      buffers: { out: randn(N * C), ids: randInts(N, 0, V), table: randn(V * C) },
      args: [ref('out'), ref('ids'), ref('table'), N, C, accumulate] });
  }
  add({ name: `embeddingBackward N=${N} C=${C} V=${V}`, kernel: 'embeddingBackward', rtol: 0,
    buffers: { dtable: randn(V * C), dout: randn(N * C), ids: randInts(N, 0, V) },
    args: [ref('dtable'), ref('dout'), ref('ids'), N, C] });
}

// frozen bfloat16 weights against the reference (bf16 products whatever setMatmulBf16 says: the cases run with it
// off), on each GEMM kernel and by shape. Odd C: rows 1, 3, ... of the weight start in the high half of a word.
// The weight holds zeros of both signs and bf16 subnormals, whose words are float32 subnormals or zeros with a
// value in the low half: a float load that flushed them would lose that value.
/** n bfloat16 weights: random, with +0, -0 and subnormals sprinkled in */
function bf16Weights(n: number): Uint16Array {
  const bits = f32ToBf16(randn(n));
  for (let i = 0; i < n; i++) {
    if (i % 7 === 3) bits[i] = 0x0000;
    else if (i % 11 === 5) bits[i] = 0x8000;
    else if (i % 13 === 8) bits[i] = 0x0003;
  }
  return bits;
}
const BF16_WEIGHT_SHAPES: ReadonlyArray<readonly [number, number, number]> = [[7, 65, 33], [1, 3, 5], [70, 129, 67], [33, 64, 9], [300, 131, 140]];
for (const gemmTile of [undefined, ...GEMM_KERNELS]) {
  const form = gemmTile === undefined ? 'by shape' : String(gemmTile);
  for (const [N, C, OC] of BF16_WEIGHT_SHAPES) {
    for (const bias of [true, false]) {
      add({ name: `matmulForwardBf16[${form}] ${N}x${C}->${OC} bias=${bias}`, kernel: 'matmulForwardBf16', rtol: 2e-5, gemmTile,
        buffers: { out: randn(N * OC), inp: randn(N * C), bias: randn(OC) }, bf16Buffers: { weight: bf16Weights(OC * C) },
        args: [ref('out'), ref('inp'), bf16Ref('weight'), bias ? ref('bias') : null, N, C, OC] });
    }
    for (const acc of [true, false]) {
      add({ name: `matmulBackwardBf16[${form}] ${N}x${C}->${OC} accumulate=${acc}`, kernel: 'matmulBackwardBf16', rtol: 2e-5, gemmTile,
        buffers: { dinp: randn(N * C), dout: randn(N * OC) }, bf16Buffers: { weight: bf16Weights(OC * C) },
        args: [ref('dinp'), ref('dout'), bf16Ref('weight'), N, C, OC, acc] });
    }
  }
  // views: the weight starts 6 values (3 words) into a larger buffer, the input and output at odd offsets
  const [N, C, OC] = [9, 17, 11];
  add({ name: `matmulForwardBf16[${form}] on offset views`, kernel: 'matmulForwardBf16', rtol: 2e-5, gemmTile,
    buffers: { out: randn(3 + N * OC), inp: randn(5 + N * C), bias: randn(1 + OC) }, bf16Buffers: { weight: bf16Weights(6 + OC * C + 3) },
    args: [ref('out', 3), ref('inp', 5), bf16Ref('weight', 6), ref('bias', 1), N, C, OC] });
  add({ name: `matmulBackwardBf16[${form}] on offset views`, kernel: 'matmulBackwardBf16', rtol: 2e-5, gemmTile,
    buffers: { dinp: randn(3 + N * C), dout: randn(5 + N * OC) }, bf16Buffers: { weight: bf16Weights(6 + OC * C + 3) },
    args: [ref('dinp', 3), ref('dout', 5), bf16Ref('weight', 6), N, C, OC, true] });
}
// the bf16 weight in bf16 mode too (the same numbers: bf16 products either way)
add({ name: 'matmulForwardBf16 with setMatmulBf16(true) 7x65->33', kernel: 'matmulForwardBf16', rtol: 2e-5, bf16: true,
  buffers: { out: randn(7 * 33), inp: randn(7 * 65), bias: randn(33) }, bf16Buffers: { weight: bf16Weights(33 * 65) },
  args: [ref('out'), ref('inp'), bf16Ref('weight'), ref('bias'), 7, 65, 33] });
// embedding lookups from a bf16 table: odd C (rows starting in a word's high half), repeated ids, both modes, a view
for (const [N, C, V] of [[13, 7, 5], [70, 33, 300], [6, 64, 9]]) {
  for (const accumulate of [false, true]) {
    add({ name: `embeddingForwardBf16 N=${N} C=${C} V=${V} acc=${accumulate}`, kernel: 'embeddingForwardBf16', rtol: 0,
      buffers: { out: randn(N * C), ids: randInts(N, 0, V) }, bf16Buffers: { table: bf16Weights(V * C) },
      args: [ref('out'), ref('ids'), bf16Ref('table'), N, C, accumulate] });
  }
}
add({ name: 'embeddingForwardBf16 on offset views', kernel: 'embeddingForwardBf16', rtol: 0,
  buffers: { out: randn(3 + 10 * 7), ids: randInts(12, 0, 6) }, bf16Buffers: { table: bf16Weights(4 + 6 * 7 + 1) },
  args: [ref('out', 3), ref('ids', 2), bf16Ref('table', 4), 10, 7, false] });

// norms: every row-size class of rowThreads (one thread per row up to 128 columns, 32 threads below 512, a
// 256-thread workgroup from 512 on) at and across its edges, with row counts that leave the last workgroup part
// empty (64 rows of one thread, two rows of 32 per workgroup)
for (const [N, C] of [[1, 1], [70, 7], [65, 64], [5, 67], [130, 33], [9, 128], [5, 129], [3, 256], [7, 300], [3, 511],
  [2, 512], [3, 2048], [2, 4099]]) {
  add({ name: `layernormForward ${N}x${C}`, kernel: 'layernormForward',
    buffers: { out: randn(N * C), mean: randn(N), rstd: randn(N), inp: randn(N * C, 2), weight: randn(C), bias: randn(C) },
    args: [ref('out'), ref('mean'), ref('rstd'), ref('inp'), ref('weight'), ref('bias'), N, C, 1e-5] });
  const mean = randn(N, 0.1);
  for (const [dw, db] of [[true, true], [false, true], [true, false], [false, false]]) {
    add({ name: `layernormBackward ${N}x${C} dweight=${dw} dbias=${db}`, kernel: 'layernormBackward', rtol: 2e-5,
      buffers: { dinp: randn(N * C), dweight: randn(C), dbias: randn(C), dout: randn(N * C), inp: randn(N * C), weight: randn(C), mean, rstd: positive(N) },
      args: [ref('dinp'), dw ? ref('dweight') : null, db ? ref('dbias') : null, ref('dout'), ref('inp'), ref('weight'), ref('mean'), ref('rstd'), N, C] });
  }
  add({ name: `rmsnormForward ${N}x${C}`, kernel: 'rmsnormForward',
    buffers: { out: randn(N * C), rstd: randn(N), inp: randn(N * C, 2), weight: randn(C) },
    args: [ref('out'), ref('rstd'), ref('inp'), ref('weight'), N, C, 1e-6] });
  for (const dw of [true, false]) {
    add({ name: `rmsnormBackward ${N}x${C} dweight=${dw}`, kernel: 'rmsnormBackward', rtol: 2e-5,
      buffers: { dinp: randn(N * C), dweight: randn(C), dout: randn(N * C), inp: randn(N * C), weight: randn(C), rstd: positive(N) },
      args: [ref('dinp'), dw ? ref('dweight') : null, ref('dout'), ref('inp'), ref('weight'), ref('rstd'), N, C] });
  }
}

// the CPU adapter's forms: one thread per row at any width (a GPU gives these rows 32 or 256 threads)
for (const [N, C] of [[7, 300], [2, 4099]]) {
  add({ name: `rmsnormForward [barrier-free] ${N}x${C}`, kernel: 'rmsnormForward', barrierFree: true,
    buffers: { out: randn(N * C), rstd: randn(N), inp: randn(N * C, 2), weight: randn(C) },
    args: [ref('out'), ref('rstd'), ref('inp'), ref('weight'), N, C, 1e-6] });
  add({ name: `layernormBackward [barrier-free] ${N}x${C}`, kernel: 'layernormBackward', rtol: 2e-5, barrierFree: true,
    buffers: { dinp: randn(N * C), dweight: randn(C), dbias: randn(C), dout: randn(N * C), inp: randn(N * C), weight: randn(C), mean: randn(N, 0.1), rstd: positive(N) },
    args: [ref('dinp'), ref('dweight'), ref('dbias'), ref('dout'), ref('inp'), ref('weight'), ref('mean'), ref('rstd'), N, C] });
}

// rope: position offsets, odd head counts, in place
for (const [B, T, H, HD, pos0] of [[2, 7, 3, 8, 0], [1, 5, 1, 2, 3], [3, 4, 5, 6, 11]]) {
  const P = pos0 + T + 2;
  const tables = { cos: randn(P * HD / 2), sin: randn(P * HD / 2) };
  const n = B * T * H * HD;
  add({ name: `ropeForward B=${B} T=${T} H=${H} HD=${HD} pos0=${pos0}`, kernel: 'ropeForward',
    buffers: { out: randn(n), inp: randn(n), ...tables }, args: [ref('out'), ref('inp'), ref('cos'), ref('sin'), B, T, H, HD, pos0] });
  add({ name: `ropeForward in place B=${B} T=${T} H=${H} HD=${HD} pos0=${pos0}`, kernel: 'ropeForward',
    buffers: { x: randn(n), ...tables }, args: [ref('x'), ref('x'), ref('cos'), ref('sin'), B, T, H, HD, pos0] });
  for (const acc of [true, false]) {
    add({ name: `ropeBackward B=${B} T=${T} H=${H} HD=${HD} pos0=${pos0} accumulate=${acc}`, kernel: 'ropeBackward',
      buffers: { dinp: randn(n), dout: randn(n), ...tables }, args: [ref('dinp'), ref('dout'), ref('cos'), ref('sin'), B, T, H, HD, pos0, acc] });
  }
}

// attention: GQA ratios 1, 2, 4; padded strides; T across the 64-query workgroups; hidden key ranges
interface AttentionShape { B: number; T: number; NH: number; NKV: number; HD: number; qPad: number; kvPad: number; hidden: number[] | null }
const attentionShapes: AttentionShape[] = [
  { B: 1, T: 1, NH: 1, NKV: 1, HD: 8, qPad: 0, kvPad: 0, hidden: null },
  { B: 2, T: 7, NH: 4, NKV: 4, HD: 8, qPad: 3, kvPad: 1, hidden: null },
  { B: 2, T: 9, NH: 4, NKV: 2, HD: 6, qPad: 0, kvPad: 5, hidden: [2, 5, 0, 0] },
  { B: 1, T: 70, NH: 4, NKV: 1, HD: 8, qPad: 2, kvPad: 0, hidden: null },
  { B: 2, T: 67, NH: 2, NKV: 1, HD: 8, qPad: 0, kvPad: 0, hidden: [10, 40, 0, 66] },
  // real head sizes (smaller key tiles: TK = 16 at HD = 128) take SwiftShader about a minute to compile and run:
  // opt in with ORPO_WEBGPU_PARITY_LARGE=1
  ...(process.env.ORPO_WEBGPU_PARITY_LARGE === '1' ? [
    { B: 1, T: 20, NH: 2, NKV: 1, HD: 128, qPad: 0, kvPad: 0, hidden: [3, 9] },
    { B: 1, T: 70, NH: 4, NKV: 2, HD: 64, qPad: 0, kvPad: 0, hidden: null },
  ] : []),
];
for (const s of attentionShapes) for (const attentionDirect of [false, true]) {
  const { B, T, NH, NKV, HD } = s;
  const qStride = NH * HD + s.qPad;
  const kvStride = NKV * HD + s.kvPad;
  const label = `[${attentionDirect ? 'direct' : 'tiled'}] B=${B} T=${T} NH=${NH} NKV=${NKV} HD=${HD} qStride=${qStride} kvStride=${kvStride} hidden=${s.hidden ? s.hidden.join(',') : 'none'}`;
  const hidden: Record<string, Int32Array> = s.hidden ? { hidden: Int32Array.from(s.hidden) } : {};
  const hiddenArg = s.hidden ? ref('hidden') : null;
  const inputs = { q: randn(B * T * qStride), k: randn(B * T * kvStride), v: randn(B * T * kvStride), ...hidden };
  add({ name: `attentionForward ${label}`, kernel: 'attentionForward', attentionDirect,
    buffers: { out: randn(B * T * NH * HD), lse: randn(B * NH * T), ...inputs },
    args: [ref('out'), ref('lse'), ref('q'), ref('k'), ref('v'), B, T, NH, NKV, HD, qStride, kvStride, hiddenArg] });
  // backward needs a consistent (out, lse): take them from the reference forward
  const out = new Float32Array(B * T * NH * HD);
  const lse = new Float32Array(B * NH * T);
  jsKernels.attentionForward(out, lse, inputs.q, inputs.k, inputs.v, B, T, NH, NKV, HD, qStride, kvStride, s.hidden ? Int32Array.from(s.hidden) : null);
  add({ name: `attentionBackward ${label}`, kernel: 'attentionBackward', rtol: 2e-5, attentionDirect,
    buffers: { dq: randn(B * T * qStride), dk: randn(B * T * kvStride), dv: randn(B * T * kvStride), dout: randn(B * T * NH * HD), out, lse, ...inputs },
    args: [ref('dq'), ref('dk'), ref('dv'), ref('dout'), ref('q'), ref('k'), ref('v'), ref('out'), ref('lse'), B, T, NH, NKV, HD, qStride, kvStride, hiddenArg] });
}
{
  // GPT-2's fused projection: q, k, v (and dq, dk, dv) are views of one (B,T,3C) buffer with row stride 3C
  const [B, T, NH, HD] = [2, 11, 3, 8];
  const C = NH * HD;
  const qkv = randn(B * T * 3 * C);
  const out = new Float32Array(B * T * C);
  const lse = new Float32Array(B * NH * T);
  jsKernels.attentionForward(out, lse, qkv, qkv.subarray(C), qkv.subarray(2 * C), B, T, NH, NH, HD, 3 * C, 3 * C);
  for (const attentionDirect of [false, true]) {
    const form = attentionDirect ? 'direct' : 'tiled';
    add({ name: `attentionForward [${form}] on fused qkv views`, kernel: 'attentionForward', attentionDirect,
      buffers: { out: randn(B * T * C), lse: randn(B * NH * T), qkv },
      args: [ref('out'), ref('lse'), ref('qkv'), ref('qkv', C), ref('qkv', 2 * C), B, T, NH, NH, HD, 3 * C, 3 * C, null] });
    add({ name: `attentionBackward [${form}] into fused dqkv views`, kernel: 'attentionBackward', rtol: 2e-5, attentionDirect,
      buffers: { dqkv: randn(B * T * 3 * C), dout: randn(B * T * C), qkv, out, lse },
      args: [ref('dqkv'), ref('dqkv', C), ref('dqkv', 2 * C), ref('dout'), ref('qkv'), ref('qkv', C), ref('qkv', 2 * C), ref('out'), ref('lse'), B, T, NH, NH, HD, 3 * C, 3 * C, null] });
  }
}
for (const [T, pos0, NH, NKV, HD, pad] of [[1, 0, 2, 2, 8, 0], [1, 9, 4, 2, 8, 3], [3, 66, 4, 1, 6, 0]]) for (const attentionDirect of [false, true]) {
  const qStride = NH * HD + pad;
  const kvStride = NKV * HD + pad;
  const L = pos0 + T;
  add({ name: `attentionDecode [${attentionDirect ? 'direct' : 'tiled'}] T=${T} pos0=${pos0} NH=${NH} NKV=${NKV} HD=${HD} pad=${pad}`,
    kernel: 'attentionDecode', attentionDirect,
    buffers: { out: randn(T * NH * HD), q: randn(T * qStride), k: randn(L * kvStride), v: randn(L * kvStride) },
    args: [ref('out'), ref('q'), ref('k'), ref('v'), T, pos0, NH, NKV, HD, qStride, kvStride] });
}

// pointwise, with large |x| for the sigmoid / tanh overflow paths
for (const N of [1, 255, 1031]) {
  const gate = randn(N, 12);
  add({ name: `swigluForward N=${N}`, kernel: 'swigluForward', buffers: { out: randn(N), gate, up: randn(N) },
    args: [ref('out'), ref('gate'), ref('up'), N] });
  for (const acc of [true, false]) {
    add({ name: `swigluBackward N=${N} accumulate=${acc}`, kernel: 'swigluBackward',
      buffers: { dgate: randn(N), dup: randn(N), dout: randn(N), gate, up: randn(N) },
      args: [ref('dgate'), ref('dup'), ref('dout'), ref('gate'), ref('up'), N, acc] });
  }
  add({ name: `geluForward N=${N}`, kernel: 'geluForward', buffers: { out: randn(N), inp: randn(N, 12) },
    args: [ref('out'), ref('inp'), N] });
  for (const acc of [true, false]) {
    add({ name: `geluBackward N=${N} accumulate=${acc}`, kernel: 'geluBackward', buffers: { dinp: randn(N), dout: randn(N), inp: randn(N, 6) },
      args: [ref('dinp'), ref('dout'), ref('inp'), N, acc] });
  }
  add({ name: `add N=${N}`, kernel: 'add', buffers: { out: randn(N), a: randn(N), b: randn(N) }, args: [ref('out'), ref('a'), ref('b'), N] });
  add({ name: `add in place N=${N}`, kernel: 'add', buffers: { a: randn(N), b: randn(N) }, args: [ref('a'), ref('a'), ref('b'), N] });
  add({ name: `axpy N=${N}`, kernel: 'axpy', buffers: { dst: randn(N), src: randn(N) }, args: [ref('dst'), ref('src'), -0.37, N] });
  add({ name: `scale N=${N}`, kernel: 'scale', buffers: { x: randn(N) }, args: [ref('x'), 1.7, N] });
}

// data movement (the former host loops): row gathers and scatter-adds with repeated rows, row scaling, strided row
// copies (the KV cache), dropout masks (exact: the same integer hash), zeroing a view
for (const [M, C, rowsOf] of [[5, 7, 11], [64, 33, 20], [300, 3, 7]] as const) {
  const rows = randInts(M, 0, rowsOf);
  rows[M - 1] = rows[0]!; // a row listed twice: its gradients must add up
  add({ name: `gatherRows ${M}x${C} of ${rowsOf}`, kernel: 'gatherRows', rtol: 0,
    buffers: { out: randn(M * C), inp: randn(rowsOf * C), rows }, args: [ref('out'), ref('inp'), ref('rows'), M, C] });
  add({ name: `scatterAddRows ${M}x${C} into ${rowsOf}`, kernel: 'scatterAddRows', rtol: 0,
    buffers: { dinp: randn(rowsOf * C), dout: randn(M * C), rows }, args: [ref('dinp'), ref('dout'), ref('rows'), M, C] });
  add({ name: `scaleRows ${M}x${C}`, kernel: 'scaleRows', rtol: 0,
    buffers: { x: randn(M * C), s: randn(M) }, args: [ref('x'), ref('s'), M, C] });
}
for (const [n, width, dstStride, srcStride] of [[1, 5, 5, 5], [7, 12, 12, 36], [40, 64, 64, 192], [3, 1, 4, 2]] as const) {
  add({ name: `copyRows ${n}x${width} strides ${dstStride}/${srcStride}`, kernel: 'copyRows', rtol: 0,
    buffers: { dst: randn(3 + n * dstStride), src: randn(1 + n * srcStride) },
    args: [ref('dst', 3), ref('src', 1), n, width, dstStride, srcStride] });
}
for (const [N, p, key] of [[1, 0.5, 7], [1000, 0.1, 0x6c6f7261], [70001, 0.35, 0xfedcba98]] as const) {
  // the masks must agree exactly (a dropped element against a kept one is an error of 1); kept values differ by the
  // product's rounding (float32 here, float64 then a float32 store in the reference): a few ulps
  add({ name: `dropoutForward N=${N} p=${p}`, kernel: 'dropoutForward', rtol: 3e-7,
    buffers: { out: randn(N), inp: randn(N) }, args: [ref('out'), ref('inp'), N, key, p] });
  add({ name: `dropoutBackward N=${N} p=${p}`, kernel: 'dropoutBackward', rtol: 3e-7,
    buffers: { dinp: randn(N), dout: randn(N) }, args: [ref('dinp'), ref('dout'), N, key, p] });
}
add({ name: 'zero a view', kernel: 'zero', rtol: 0, buffers: { x: randn(100) }, args: [ref('x', 10), 37] });

// loss head: rows without a target, V in every row-size class (see the norms) and across its edges, large logits,
// ties for argmax (within a lane and between lanes)
for (const [N, V] of [[1, 1], [5, 7], [70, 20], [65, 128], [7, 129], [9, 300], [3, 511], [2, 512], [4, 1031], [3, 4099]]) {
  const targets = randInts(N, -1, V);
  targets[0] = V - 1;
  const logits = randn(N * V, 20);
  const lse = new Float32Array(N);
  jsKernels.logprobForward(new Float32Array(N), lse, logits, targets, N, V);
  add({ name: `logprobForward N=${N} V=${V}`, kernel: 'logprobForward',
    buffers: { logp: randn(N), lse: randn(N), logits, targets }, args: [ref('logp'), ref('lse'), ref('logits'), ref('targets'), N, V] });
  add({ name: `logprobBackward N=${N} V=${V}`, kernel: 'logprobBackward',
    buffers: { dlogits: randn(N * V), dlogp: randn(N), logits, lse, targets },
    args: [ref('dlogits'), ref('dlogp'), ref('logits'), ref('lse'), ref('targets'), N, V] });
  add({ name: `logprobBackward in place N=${N} V=${V}`, kernel: 'logprobBackward',
    buffers: { logits: logits.slice(), dlogp: randn(N), lse, targets },
    args: [ref('logits'), ref('dlogp'), ref('logits'), ref('lse'), ref('targets'), N, V] });
  const tied = Float32Array.from(randn(N * V), (x) => Math.round(x * 2) / 2); // many equal maxima
  add({ name: `logitsStats N=${N} V=${V}`, kernel: 'logitsStats',
    buffers: { mean: randn(N), argmax: randInts(N, 0, 1), logits: tied }, args: [ref('mean'), ref('argmax'), ref('logits'), N, V] });
  if (V === 4099) {
    add({ name: `logprobForward [barrier-free] N=${N} V=${V}`, kernel: 'logprobForward', barrierFree: true,
      buffers: { logp: randn(N), lse: randn(N), logits, targets }, args: [ref('logp'), ref('lse'), ref('logits'), ref('targets'), N, V] });
    add({ name: `logitsStats [barrier-free] N=${N} V=${V}`, kernel: 'logitsStats', barrierFree: true,
      buffers: { mean: randn(N), argmax: randInts(N, 0, 1), logits: tied }, args: [ref('mean'), ref('argmax'), ref('logits'), N, V] });
  }
}

// optimizer
for (const [N, step] of [[1, 1], [1031, 7]]) {
  add({ name: `adamwStep N=${N} step=${step}`, kernel: 'adamwStep',
    buffers: { params: randn(N), grads: randn(N), m: randn(N, 0.1), v: positive(N) },
    args: [ref('params'), ref('grads'), ref('m'), ref('v'), N, 1e-3, 0.9, 0.999, 1e-8, 0.01, step] });
}

// ------------------------------------------------------------------------------------------------ running

interface Result {
  readonly name: string;
  readonly ok: boolean;
  readonly rtol: number;
  /** the largest |gpu - ref| / (|ref| + mean|ref|) over the case's buffers */
  readonly worst: number;
  readonly ms?: number;
  readonly detail?: string;
}

function compare(name: string, got: Float32Array | Int32Array, want: Float32Array | Int32Array, rtol: number):
  { worst: number; detail?: string } {
  if (want instanceof Int32Array) {
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) return { worst: Infinity, detail: `${name}[${i}]: gpu ${got[i]} vs js ${want[i]}` };
    }
    return { worst: 0 };
  }
  let meanAbs = 0;
  for (let i = 0; i < want.length; i++) meanAbs += Math.abs(want[i]);
  meanAbs = want.length ? meanAbs / want.length : 0;
  let worst = 0;
  let detail: string | undefined;
  for (let i = 0; i < want.length; i++) {
    // the 1e-12 floor: an output that is all zeros in the reference (GELU of one far negative x, where float64's tanh
    // saturates to -1 and the GPU's cancellation-free form gives -3e-20) is compared absolutely, far below any
    // value these cases produce
    const err = Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + meanAbs + 1e-12);
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      if (!(err <= rtol)) detail = `${name}[${i}]: gpu ${got[i]} vs js ${want[i]}`;
    }
  }
  return { worst, detail };
}

type Invoke = (...args: unknown[]) => unknown;

/** each bit-pattern array as a Bf16Buffer of backend k (allocBf16 + uploadBf16) */
function bf16Uploads<F, I>(k: Backend<F, I>, bits: Readonly<Record<string, Uint16Array>>): Record<string, Bf16Buffer<F>> {
  return Object.fromEntries(Object.entries(bits).map(([n, b]) => {
    const w = allocBf16(k, b.length);
    uploadBf16(k, w, b);
    return [n, w];
  }));
}

function bf16View<F, I>(k: Backend<F, I>, buffers: Readonly<Record<string, Bf16Buffer<F>>>, a: Bf16Ref): Bf16Buffer<F> {
  const w = buffers[a.bf16];
  return viewBf16(k, w, a.offset, w.length - a.offset);
}

// ------------------------------------------------------------------------------------------------ runtime checks

/** a check returns null when it passes, else what went wrong */
type RuntimeCheck = (runtime: WebGpuRuntime, kernels: WebGpuKernels) => Promise<string | null>;

function sameValues(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `[${i}]: ${got[i]} vs ${want[i]}`;
  return null;
}

/** Node's own setImmediate, before a runtime on a software adapter throttles Dawn's polling through it */
const nodeSetImmediate = globalThis.setImmediate;

const runtimeChecks: Record<string, RuntimeCheck> = {
  'runtime: on a software adapter Dawn\'s polling goes through setTimeout, other setImmediate callbacks as before': async (runtime, kernels) => {
    if (!runtime.info.isSoftware) return globalThis.setImmediate === nodeSetImmediate ? null : 'setImmediate replaced on a GPU adapter';
    if (globalThis.setImmediate === nodeSetImmediate) return 'setImmediate not throttled on a software adapter';
    // a JavaScript callback (and a promise resolver, one parameter) still runs as an immediate, with its arguments
    const got = await new Promise<string>((resolve) => setImmediate((a: string, b: string) => resolve(a + b), 'x', 'y'));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const x = kernels.allocFloats(3);
    kernels.upload(x, Float32Array.from([1, 2, 3]));
    kernels.scale(x, 2, 3);
    const values = [...await kernels.download(x)];
    kernels.free(x);
    return got !== 'xy' ? `callback arguments: ${got}` : sameValues(values, [2, 4, 6]);
  },
  'backend memory: allocFloats and allocInts are zeroed, views share memory, uploads and downloads round-trip': async (_runtime, kernels) => {
    const f = kernels.allocFloats(10);
    const i = kernels.allocInts(6);
    const zeros = [...await kernels.download(f), ...await kernels.downloadInts(i)];
    if (zeros.some((v) => v !== 0)) return `not zeroed: ${zeros.join(',')}`;
    kernels.upload(kernels.view(f, 2, 3), Float64Array.from([1.5, -2, 3]));
    kernels.uploadInts(kernels.viewInts(i, 4, 2), Int32Array.from([-7, 2 ** 31 - 1]));
    const got = [...await kernels.download(f)];
    const gotInts = [...await kernels.downloadInts(i)];
    kernels.free(f);
    kernels.free(i);
    return sameValues(got, [0, 0, 1.5, -2, 3, 0, 0, 0, 0, 0]) ?? sameValues(gotInts, [0, 0, 0, 0, -7, 2 ** 31 - 1]);
  },
  'runtime: many kernels, uploads, copies and clears go out in one submission, in recorded order': async (runtime, kernels) => {
    const x = runtime.alloc(8);
    const y = runtime.alloc(8);
    const before = runtime.batchStats().submits;
    runtime.upload(x, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    for (let i = 0; i < 10; i++) kernels.scale(x, 2, 8); // x = 1024 * (1..8)
    runtime.copy(y, x);
    runtime.upload(x.view(2, 2), Float32Array.from([-1, -1])); // after the scales: not scaled
    kernels.scale(x.view(0, 4), 0.5, 4);
    runtime.zero(y.view(6, 2));
    kernels.add(y, y, x, 8);
    const got = await runtime.download(y);
    const submits = runtime.batchStats().submits - before;
    runtime.free(x);
    runtime.free(y);
    if (submits !== 1) return `${submits} submissions, expected 1`;
    return sameValues(got, [1024 + 512, 2048 + 1024, 3072 - 0.5, 4096 - 0.5, 5120 * 2, 6144 * 2, 7168, 8192]);
  },
  'runtime: more than 65535 workgroups fold into a second grid dimension (scale over 16.8M elements)': async (runtime, kernels) => {
    const N = 65535 * 256 + 300;
    const data = new Float32Array(N);
    for (let i = 0; i < N; i++) data[i] = i % 1000;
    const x = runtime.fromArray(data);
    kernels.scale(x, 2, N);
    const got = await runtime.download(x);
    runtime.free(x);
    for (let i = 0; i < N; i++) if (got[i] !== 2 * (i % 1000)) return `[${i}]: ${got[i]} vs ${2 * (i % 1000)}`;
    return null;
  },
  'runtime: freed buffers are reused by size class; the pool reports live and pooled bytes': async (runtime) => {
    runtime.flush(); // returns what earlier cases freed
    const a = runtime.alloc(1000); // 4000 bytes: the 4096-byte class
    const afterFirst = runtime.memoryStats();
    runtime.free(a);
    runtime.flush();
    const afterFree = runtime.memoryStats();
    const b = runtime.alloc(900); // 3600 bytes: the same class, so the same buffer comes back
    const afterSecond = runtime.memoryStats();
    runtime.free(b);
    runtime.flush();
    if (b.allocation.buffer !== a.allocation.buffer) return 'a freed buffer of the same size class was not reused';
    if (afterSecond.reused !== afterFirst.reused + 1) return `reused ${afterSecond.reused - afterFirst.reused}, expected 1`;
    if (afterFree.liveBytes !== afterFirst.liveBytes - 4096) return `freeing 4096 bytes changed live bytes by ${afterFree.liveBytes - afterFirst.liveBytes}`;
    if (afterSecond.liveBytes !== afterFirst.liveBytes) return `live bytes ${afterSecond.liveBytes} after reuse, ${afterFirst.liveBytes} before`;
    return null;
  },
  'bf16 weights: the three kernels equal matmulForward / matmulBackward in bf16 mode and embeddingForward on the widened weight, bit for bit, on every GEMM kernel': async (runtime, kernels) => {
    const problems: string[] = [];
    const [N, C, OC, V] = [37, 65, 33, 11];
    const bits = bf16Weights(OC * C);
    const w = allocBf16(kernels, OC * C);
    uploadBf16(kernels, w, bits);
    const wide = runtime.fromArray(bf16ToF32(bits));
    const inp = runtime.fromArray(randn(N * C));
    const bias = runtime.fromArray(randn(OC));
    const dout = runtime.fromArray(randn(N * OC));
    const dinp0 = randn(N * C);
    const outs = [runtime.alloc(N * OC), runtime.alloc(N * OC)] as const;
    const dinps = [runtime.alloc(N * C), runtime.alloc(N * C)] as const;
    const same = async (what: string, x: GpuTensor, y: GpuTensor): Promise<void> => {
      const d = sameValues(await runtime.download(x), await runtime.download(y));
      if (d !== null) problems.push(`${what}: ${d}`);
    };
    for (const tile of GEMM_KERNELS) {
      kernels.setGemmTile(tile);
      for (const b of [bias, null]) {
        kernels.setMatmulBf16(false); // the bf16 weight's products are bf16 regardless
        kernels.matmulForwardBf16(outs[0], inp, w, b, N, C, OC);
        kernels.setMatmulBf16(true);
        kernels.matmulForward(outs[1], inp, wide, b, N, C, OC);
        await same(`forward [${tile}] bias=${b !== null}`, outs[0], outs[1]);
      }
      runtime.upload(dinps[0], dinp0);
      runtime.upload(dinps[1], dinp0);
      kernels.setMatmulBf16(false);
      kernels.matmulBackwardBf16(dinps[0], dout, w, N, C, OC, true);
      kernels.setMatmulBf16(true);
      kernels.matmulBackward(dinps[1], null, null, dout, inp, wide, N, C, OC, true);
      await same(`backward [${tile}]`, dinps[0], dinps[1]);
    }
    kernels.setGemmTile(null);
    kernels.setMatmulBf16(false);
    // a weight shorter than the shape is refused, not read past its end
    try {
      kernels.matmulForwardBf16(outs[0], inp, viewBf16(kernels, w, 0, OC * C - 1), null, N, C, OC);
      problems.push('a short bf16 weight accepted');
    } catch (e) {
      if (!(e instanceof RangeError)) problems.push(`short weight: ${(e as Error).message}`);
    }
    const tableBits = bf16Weights(V * C);
    const table = allocBf16(kernels, V * C);
    uploadBf16(kernels, table, tableBits);
    const wideTable = runtime.fromArray(bf16ToF32(tableBits));
    const ids = runtime.fromArray(randInts(N, 0, V));
    for (const accumulate of [false, true]) {
      runtime.upload(dinps[0], dinp0);
      runtime.upload(dinps[1], dinp0);
      kernels.embeddingForwardBf16(dinps[0], ids, table, N, C, accumulate);
      kernels.embeddingForward(dinps[1], ids, wideTable, N, C, accumulate);
      await same(`embedding acc=${accumulate}`, dinps[0], dinps[1]);
    }
    for (const t of [w.data, wide, inp, bias, dout, ...outs, ...dinps, table.data, wideTable, ids]) runtime.free(t);
    return problems.length ? problems.join('; ') : null;
  },
  'runtime: wrong element types, short or freed tensors, bad views and kernel errors are reported': async (runtime, kernels) => {
    const f = runtime.alloc(4);
    const problems: string[] = [];
    try { kernels.embeddingForward(f, f, f, 1, 4, false); problems.push('f32 ids accepted'); } catch (e) {
      if (!(e instanceof TypeError)) problems.push(`ids: ${(e as Error).message}`);
    }
    try { kernels.gemm(f, f, f, 2, 2, 3, false, false, false); problems.push('a 4-element a for a 2x3 operand accepted'); } catch (e) {
      if (!(e instanceof RangeError && /a holds 4 elements, the shape needs 6/.test(e.message))) problems.push(`gemm: ${(e as Error).message}`);
    }
    try { f.view(3, 2); problems.push('view past the end accepted'); } catch (e) {
      if (!(e instanceof RangeError)) problems.push(`view: ${(e as Error).message}`);
    }
    runtime.free(f);
    try { kernels.scale(f, 2, 4); problems.push('a freed tensor accepted'); } catch (e) {
      if (!/was freed/.test((e as Error).message)) problems.push(`freed: ${(e as Error).message}`);
    }
    try { runtime.free(f); problems.push('a second free accepted'); } catch (e) {
      if (!/freed twice/.test((e as Error).message)) problems.push(`free twice: ${(e as Error).message}`);
    }
    // a kernel that does not compile: the next awaited download rejects, naming the kernel and the WGSL error
    const broken: KernelSpec = { name: 'brokenOnPurpose', tensors: [{ name: 'x', type: 'f32', written: true }],
      scalars: { N: 'u32' }, grid: () => [1, 1, 1], source: () => '@compute @workgroup_size(1) fn main() { x[0] = undefinedName; }' };
    const x = runtime.alloc(1);
    runtime.dispatch(broken, { x }, { N: 1 });
    try {
      await runtime.download(x);
      problems.push('a WGSL error went unreported');
    } catch (e) {
      const message = (e as Error).message;
      if (!message.includes('brokenOnPurpose') || !message.includes('undefinedName')) problems.push(`error message: ${message}`);
    }
    runtime.free(x);
    return problems.length ? problems.join('; ') : null;
  },
};

async function main(): Promise<void> {
  const started = Date.now();
  const only = process.argv[2] ? new RegExp(process.argv[2]) : null;
  const { runtime, kernels } = await createNodeWebGpuBackend();
  console.log(JSON.stringify({ adapter: runtime.info.adapter, software: runtime.info.isSoftware }));
  let failed = 0;
  let count = 0;
  for (const c of cases) {
    if (only && !only.test(c.name)) continue;
    count++;
    const caseStarted = Date.now();
    const rtol = c.rtol ?? 1e-5;
    const reference = Object.fromEntries(Object.entries(c.buffers).map(([n, b]) => [n, b.slice()]));
    const tensors: Record<string, GpuTensor> = Object.fromEntries(
      Object.entries(c.buffers).map(([n, b]) => [n, runtime.fromArray(b)]));
    const hostBf16 = bf16Uploads(jsKernels, c.bf16Buffers ?? {});
    const gpuBf16 = bf16Uploads(kernels, c.bf16Buffers ?? {});
    const hostArgs = c.args.map((a) => (a === null || typeof a !== 'object' ? a
      : 'ref' in a ? reference[a.ref].subarray(a.offset) : bf16View(jsKernels, hostBf16, a)));
    const gpuArgs = c.args.map((a) => (a === null || typeof a !== 'object' ? a
      : 'ref' in a ? tensors[a.ref].view(a.offset) : bf16View(kernels, gpuBf16, a)));
    let result: Result;
    try {
      jsKernels.setMatmulBf16(c.bf16 === true);
      kernels.setMatmulBf16(c.bf16 === true);
      kernels.setBarrierFree(c.barrierFree === true);
      kernels.setGemmTile(c.gemmTile ?? null);
      kernels.setAttentionDirect(c.attentionDirect ?? null);
      (jsKernels[c.kernel] as Invoke).apply(jsKernels, hostArgs);
      (kernels[c.kernel] as Invoke).apply(kernels, gpuArgs);
      let worst = 0;
      let detail: string | undefined;
      for (const [n, want] of Object.entries(reference)) {
        const got = want instanceof Int32Array ? await runtime.downloadInt32(tensors[n]) : await runtime.download(tensors[n]);
        const r = compare(n, got, want, rtol);
        if (r.worst > worst || (r.detail && !detail)) worst = Math.max(worst, r.worst);
        detail ??= r.detail;
      }
      result = { name: c.name, ok: !(worst > rtol), rtol, worst, ms: Date.now() - caseStarted, ...(worst > rtol ? { detail } : {}) };
    } catch (e) {
      result = { name: c.name, ok: false, rtol, worst: Infinity, detail: (e as Error).message };
    }
    for (const t of Object.values(tensors)) runtime.free(t);
    for (const w of Object.values(gpuBf16)) kernels.free(w.data);
    if (!result.ok) failed++;
    console.log(JSON.stringify(result, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v)));
  }
  // sumSquares returns a number on the host and writes a one-element tensor on the GPU
  // one level of reduceSum (N <= 64), two, and three with a partial last fold
  for (const N of [1, 64, 1000, 70001, 300001]) {
    const name = `sumSquares N=${N}`;
    if (only && !only.test(name)) continue;
    count++;
    const x = randn(N);
    const want = jsKernels.sumSquares(x, N);
    const xs = runtime.fromArray(x);
    const out = runtime.alloc(1);
    kernels.sumSquaresInto(out, xs, N);
    const got = (await runtime.download(out))[0];
    const worst = Math.abs(got - want) / Math.abs(want);
    const ok = worst <= 1e-5;
    if (!ok) failed++;
    console.log(JSON.stringify({ name, ok, rtol: 1e-5, worst, ...(ok ? {} : { detail: `gpu ${got} vs js ${want}` }) }));
    runtime.free(xs);
    runtime.free(out);
  }
  for (const [name, check] of Object.entries(runtimeChecks)) {
    if (only && !only.test(name)) continue;
    count++;
    let detail: string | null;
    try {
      detail = await check(runtime, kernels);
    } catch (e) {
      detail = (e as Error).message;
    }
    if (detail !== null) failed++;
    console.log(JSON.stringify({ name, ok: detail === null, rtol: 0, worst: detail === null ? 0 : 'Infinity', ...(detail ? { detail } : {}) }));
  }
  const { submits, dispatches } = runtime.batchStats();
  const pool = runtime.memoryStats();
  runtime.destroy();
  const restored = 'runtime: destroy() gives setImmediate back';
  if (!only || only.test(restored)) {
    count++;
    const ok = globalThis.setImmediate === nodeSetImmediate;
    if (!ok) failed++;
    console.log(JSON.stringify({ name: restored, ok, rtol: 0, worst: ok ? 0 : 'Infinity', ...(ok ? {} : { detail: 'still throttled' }) }));
  }
  console.log(JSON.stringify({ summary: true, cases: count, failed, seconds: (Date.now() - started) / 1000, submits, dispatches, pool }));
}

// `node --test dist/test/` also runs every .js file under a test/ folder, this one included: outside the child
// process the test file starts (which sets the environment SwiftShader needs), there is nothing to do.
if (process.env.ORPO_WEBGPU_PARITY === '1') await main();
else console.log('webgpu parity runner: started by test/webgpu-kernels.test.ts (ORPO_WEBGPU_PARITY=1); nothing to do alone');
