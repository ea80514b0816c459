// Every WGSL kernel of the WebGPU backend, one table entry each: tensors (indexed in the WGSL as `name[i]`, element
// i of the bound view), uniform scalars (`P.name`), the source as a function of its compile-time constants, and the
// workgroups to dispatch. ./kernels.ts composes them into the operations of src/backend/kernels.ts.
//
// Shapes and semantics are the reference backend's (src/backend/js). Everything is float32; sums that the
// reference runs in float64 (gemm, reductions) run in float32 here, in tiles or trees, so results agree to
// ~1e-5 relative, not bit for bit. Nothing uses atomics: every output element has one writer, so results are
// deterministic run to run (the embedding backward included, see embeddingLinks).
import { grid1d, type Consts, type Grid, type KernelSpec, type Scalars } from './runtime.js';

/** workgroup size of the 1-D kernels (elementwise and row kernels) */
const WG = 256;
/**
 * Which GEMM kernel a product gets on a GPU: `direct32` (gemmDirect, 4x4 outputs per thread: no workgroup memory, no
 * barriers) while the multiply-add count M*N*K is at most GEMM_DIRECT_MAX_MACS, products that take a GPU
 * microseconds whichever kernel runs them, where the tiled kernel leaves most of a GPU idle (a 176x64x128 product is
 * 3 tiles of 64); else the tiled `gemm` with a 128x128 block of C per workgroup (8x8 outputs per thread: twice the
 * arithmetic per shared-memory load) once both sides of C reach 128, else 64x64 (4x4 per thread), so that products
 * with a narrow side (decoding, LoRA, odd heads) still spread over enough workgroups. (A CPU adapter takes
 * `direct64` at every size: see WebGpuKernels.barrierFree.)
 */
export function gemmTile(M: number, N: number, K: number): GemmTile {
  if (M * N * K <= GEMM_DIRECT_MAX_MACS) return 'direct32';
  return M >= 128 && N >= 128 ? 128 : 64;
}
/** the tiled GEMM's block of C (64, 128), or gemmDirect's: direct32 (4x4 per thread), direct64 (8x8 per thread) */
export type GemmTile = 'direct32' | 'direct64' | 64 | 128;
/** multiply-adds up to which a product runs on gemmDirect on a GPU (see gemmTile) */
export const GEMM_DIRECT_MAX_MACS = 1 << 22;
/** queries (or keys, in the dk/dv pass) per attention workgroup: one per thread */
export const ATTENTION_ROWS = 64;

/** keys (or queries) per shared-memory tile so that two HD-wide tiles fit 16 KiB, WebGPU's default workgroup storage */
export function attentionTile(HD: number): number {
  return Math.max(1, Math.min(32, Math.floor(2048 / HD)));
}

const ELEMENT_INDEX = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * ${WG}u + lid;`;

/** an elementwise kernel over P.N items: `body` sees `idx` (< P.N) */
function elementwise(body: string, helpers = ''): string {
  return `${helpers}\n${ELEMENT_INDEX}\n  if (idx >= P.N) { return; }\n${body}\n}`;
}

/**
 * Threads that share one row in the row kernels (norms, log-softmax, logits stats): a compile-time constant `RT` of
 * each pipeline, chosen from the row width, so that a narrow row does not pay for a whole workgroup:
 * - up to ROW_PER_THREAD_MAX columns, one thread per row (64 rows per workgroup) and no barrier at all. A row of
 *   128 floats is a short loop for one thread, and on SwiftShader (a CPU Vulkan) every workgroupBarrier switches
 *   coroutines for each group of lanes: a 256-thread tree per row cost ~1.4 ms there, a barrier-free row ~4 us;
 * - below FULL_ROW_MIN columns, 32 threads per row (two rows per 64-thread workgroup): a 5-level tree, no idle lanes;
 * - from FULL_ROW_MIN columns on (C = 896..4096, V = 151936), a 256-thread workgroup per row as before, with the
 *   same loads and the same tree (the same sums to the bit).
 */
export type RowThreads = 1 | 32 | 256;
export const ROW_PER_THREAD_MAX = 128;
export const FULL_ROW_MIN = 512;

export function rowThreads(width: number): RowThreads {
  if (width <= ROW_PER_THREAD_MAX) return 1;
  return width < FULL_ROW_MIN ? 32 : 256;
}

/** threads per workgroup of a row kernel with RT threads per row: 64 rows of one, two rows of 32, one row of 256 */
export function rowGroupThreads(rt: RowThreads): number {
  return Math.max(64, rt);
}

function rowThreadsOf(consts: Consts): RowThreads {
  const rt = consts.RT;
  if (rt !== 1 && rt !== 32 && rt !== 256) throw new Error(`row kernel: RT must be 1, 32 or 256 (rowThreads), got ${String(rt)}`);
  return rt;
}

/** the grid of a row kernel: P.N rows, rowGroupThreads / RT per workgroup */
const rows = (s: Scalars, c: Consts): Grid => {
  const rt = rowThreadsOf(c);
  return grid1d(s.N, rowGroupThreads(rt) / rt);
};

/**
 * A row kernel over P.N rows of P.<widthName> columns, RT threads per row. `body` sees `lid`, `sub` (the thread's
 * lane in its row, 0..RT-1: it takes columns sub, sub + RT, ...), `row`, `width` and `lead` (the lane that writes
 * the row's own results), and row_sum(value, lid), the sum over the row's lanes (call it from uniform control
 * flow). The lanes of a slot past the last row keep running, for the barriers, with `row` clamped and `width` 0:
 * they read and write nothing.
 */
function rowKernel(consts: Consts, widthName: string, body: string, helpers = ''): string {
  const rt = rowThreadsOf(consts);
  const threads = rowGroupThreads(rt);
  return `${rowSum(rt, threads)}\n${helpers}\n@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let sub = lid % RT;
  let slot = (wid.y * nwg.x + wid.x) * ${threads / rt}u + lid / RT;
  let row = min(slot, P.N - 1u);
  let width = select(0u, P.${widthName}, slot < P.N);
  let lead = sub == 0u && slot < P.N;
${body}
}`;
}

/** row_sum: a tree over the RT lanes of each row in workgroup memory; with one thread per row, the value itself */
function rowSum(rt: RowThreads, threads: number): string {
  if (rt === 1) return 'fn row_sum(value: f32, lid: u32) -> f32 { return value; }';
  return `var<workgroup> red: array<f32, ${threads}>;
fn row_sum(value: f32, lid: u32) -> f32 {
  let sub = lid % RT;
  red[lid] = value;
  workgroupBarrier();
  for (var stride = RT / 2u; stride > 0u; stride >>= 1u) {
    if (sub < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  let total = red[lid - sub];
  workgroupBarrier();
  return total;
}`;
}

/**
 * The tree that combines per-lane state across a row's RT lanes, leaving the row's result in lane 0's variables:
 * `store` writes this lane's state to workgroup arrays at [lid], `merge` folds in the state at [lid + stride] (and
 * stores the result). Empty with one thread per row: the kernel then has no barrier.
 */
function rowTree(rt: RowThreads, store: string, merge: string): string {
  if (rt === 1) return '';
  return `  ${store}
  workgroupBarrier();
  for (var stride = RT / 2u; stride > 0u; stride >>= 1u) {
    if (sub < stride) {
${merge}
      ${store}
    }
    workgroupBarrier();
  }`;
}

/** workgroup arrays for rowTree, one per lane; none with one thread per row */
function rowArrays(rt: RowThreads, arrays: Readonly<Record<string, 'f32' | 'u32'>>): string {
  if (rt === 1) return '';
  const threads = rowGroupThreads(rt);
  return Object.entries(arrays).map(([name, type]) => `var<workgroup> ${name}: array<${type}, ${threads}>;`).join('\n');
}

const NEG_BIG = 'const NEG_BIG: f32 = -3.0e38;';

/** values one thread of reduceSum adds per level */
export const REDUCE_FOLD = 64;

/** rows per chunk of the column reductions: enough workgroups to fill a GPU for a few thousand rows */
export const COLUMN_CHUNK_ROWS = 64;

/** a column kernel: thread `col` (< P.N) of chunk wid.y, over rows [r0, r1) of P.rows in chunks of P.chunkRows */
const COLUMN_CHUNK_INDEX = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = wid.x * ${WG}u + lid;
  if (col >= P.N) { return; }
  let r0 = wid.y * P.chunkRows;
  let r1 = min(P.rows, r0 + P.chunkRows);`;

const SIGMOID = `fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}`;

// GELU's 1 + tanh(u) and 1 - tanh(u)^2 through e = exp(-2|u|): 2/(1+e) or 2e/(1+e), and 4e/(1+e)^2. Never
// overflows (some drivers' tanh returns NaN for large |u|) and keeps the far negative tail, where 1 + tanh(u)
// computed as written cancels to 0 in float32 (the reference gives -9e-11 at x = -6.4).
const GELU = `const GELU_K: f32 = 0.7978845608028654;
fn one_plus_tanh(u: f32) -> f32 {
  let e = exp(-2.0 * abs(u));
  return select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
}
fn sech_squared(u: f32) -> f32 {
  let e = exp(-2.0 * abs(u));
  return 4.0 * e / ((1.0 + e) * (1.0 + e));
}`;

const elements = (s: Scalars): Grid => grid1d(s.N, WG);

/**
 * Attention kernels come in two forms, a compile-time constant DIRECT of each pipeline (see attentionDirect):
 * - tiled (DIRECT false): a workgroup takes 64 consecutive queries (or keys) of one (b, head), and the keys (or
 *   queries) it walks are staged in tiles of TK through workgroup memory, shared by its 64 threads;
 * - direct (DIRECT true), for short sequences: one thread per (b, head, position) over a flat range, so no lane
 *   waits idle when T is far below 64, and every operand read straight from global memory, so no barrier at all.
 * Both walk the keys in the same tiles of TK in the same order: the same sums.
 */
export function attentionDirect(keys: number): boolean {
  return keys <= ATTENTION_DIRECT_MAX_KEYS;
}
/** key count up to which attention runs direct: a 64-query workgroup then has all its keys in one or two tiles */
export const ATTENTION_DIRECT_MAX_KEYS = 64;

function attentionDirectOf(consts: Consts): boolean {
  if (typeof consts.DIRECT !== 'boolean') throw new Error('attention kernel: DIRECT (attentionDirect) must be given');
  return consts.DIRECT;
}

/** the grid of a query- or key-per-thread attention kernel over T positions of `heads` heads of B sequences */
function attentionGrid(s: Scalars, c: Consts, heads: number): Grid {
  if (attentionDirectOf(c)) return grid1d(s.B * heads * s.T, ATTENTION_ROWS);
  return [Math.ceil(s.T / ATTENTION_ROWS), heads, s.B];
}

/**
 * The start of an attention kernel with one position per thread: `b`, `head` (< heads), `t` (< P.T when `valid`).
 * Tiled: 64 consecutive positions of (wid.z, wid.y) per workgroup. Direct: position, head, sequence from the flat
 * thread index (past the end: `valid` false, b clamped so that its reads stay in range).
 */
function positionPerThread(direct: boolean, heads: string, shared: string): string {
  const head = `@compute @workgroup_size(${ATTENTION_ROWS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {`;
  if (direct) {
    return `${head}
  let flat = (wid.y * nwg.x + wid.x) * ${ATTENTION_ROWS}u + lid;
  let t = flat % P.T;
  let head = (flat / P.T) % ${heads};
  let b = min(flat / (P.T * ${heads}), P.B - 1u);
  let valid = flat < P.B * ${heads} * P.T;`;
  }
  return `${shared}
${head}
  let b = wid.z;
  let head = wid.y;
  let t = wid.x * ${ATTENTION_ROWS}u + lid;
  let valid = t < P.T;`;
}

/**
 * The start of a query-per-thread attention kernel (forward, decode, dq): query t of (b, head h) per thread,
 * `valid` when t < T; kv head kvh; L keys, the query's position `last` = pos0 + t; the key range [lo, hi) that
 * `hidden` keeps from it (empty unless last >= hidden[2b+1]); tiled: the workgroup's key/value tiles.
 */
function queryRowKernelHead(pos0: string, direct: boolean): string {
  return `${positionPerThread(direct, 'P.NH', `var<workgroup> Ks: array<f32, TK * HD>;
var<workgroup> Vs: array<f32, TK * HD>;`)}
  let h = head;
  let kvh = h / (P.NH / P.NKV);
  let L = ${pos0} + P.T;
  let last = ${pos0} + t;
  var lo = 0u;
  var hi = 0u;
  if (P.hasHidden != 0u) {
    let hiddenHi = u32(hidden[2u * b + 1u]);
    if (last >= hiddenHi) { lo = u32(hidden[2u * b]); hi = hiddenHi; }
  }`;
}

/**
 * The keys a query kernel walks: tiled, up to the workgroup's last query, each tile staged into Ks / Vs (zeros past
 * L) by all threads between barriers; direct, up to the thread's own query, nothing staged.
 */
function keyTiles(direct: boolean, workgroupEnd: string, body: string): string {
  if (direct) {
    return `  let keyEnd = last + 1u;
  for (var s0 = 0u; s0 < keyEnd; s0 += TK) {
${body}
  }`;
  }
  return `  let keyEnd = ${workgroupEnd};
  for (var s0 = 0u; s0 < keyEnd; s0 += TK) {
    for (var e = lid; e < TK * HD; e += ${ATTENTION_ROWS}u) {
      let s = s0 + e / HD;
      var kx = 0.0;
      var vx = 0.0;
      if (s < L) {
        let ko = (b * L + s) * P.kvStride + kvh * HD + e % HD;
        kx = k[ko];
        vx = v[ko];
      }
      Ks[e] = kx;
      Vs[e] = vx;
    }
    workgroupBarrier();
${body}
    workgroupBarrier();
  }`;
}

/** element i of key (or value) j of the current tile: from the staged tile, or from global memory when direct */
function keyAt(direct: boolean, tensor: 'k' | 'v', j: string, i: string): string {
  if (direct) return `${tensor}[(b * L + s0 + ${j}) * P.kvStride + kvh * HD + ${i}]`;
  return `${tensor === 'k' ? 'Ks' : 'Vs'}[${j} * HD + ${i}]`;
}

function gemmDirectBlockOf(consts: Consts): 4 | 8 {
  if (consts.RB !== 4 && consts.RB !== 8) throw new Error(`gemmDirect: RB must be 4 or 8, got ${String(consts.RB)}`);
  return consts.RB;
}

/** gemmDirect's WGSL for RB x RB outputs per thread: rows a0.., columns b0.., accumulators acc{i}_{j} (vec4 of columns) */
function gemmDirectSource(rb: 4 | 8): string {
  const rows = [...Array(rb).keys()];
  const quads = [...Array(rb / 4).keys()];
  // loadA / loadB: the operand at a stored index; the k loops differ only in these
  const kStep = (loadA: (i: string) => string, loadB: (i: string) => string): string => [
    ...quads.map((j) => `      let bv${j} = vec4f(${[0, 1, 2, 3].map((q) => loadB(`bk + b${4 * j + q}`)).join(', ')});`),
    ...rows.flatMap((i) => [`      let av${i} = ${loadA(`a${i} + ak`)};`, ...quads.map((j) => `      acc${i}_${j} += av${i} * bv${j};`)]),
    '      ak += P.aK;',
    '      bk += P.bK;',
  ].join('\n');
  return `
fn round_bf16(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) { return bitcast<f32>((u | 0x00400000u) & 0xffff0000u); }
  return bitcast<f32>(((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) << 16u);
}
${BF16_WEIGHT}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r0 = wid.y * ${8 * rb}u + (lid / 8u) * ${rb}u;
  let c0 = wid.x * ${8 * rb}u + (lid % 8u) * ${rb}u;
${rows.map((i) => `  let a${i} = min(r0 + ${i}u, P.M - 1u) * P.aM;`).join('\n')}
${rows.map((j) => `  let b${j} = min(c0 + ${j}u, P.N - 1u) * P.bN;`).join('\n')}
${rows.flatMap((i) => quads.map((j) => `  var acc${i}_${j} = vec4f();`)).join('\n')}
  var ak = 0u;
  var bk = 0u;
  if (P.bBf16 != 0u) {
    // a bfloat16 B: exact in bfloat16 already, so only A is rounded
    for (var k = 0u; k < P.K; k++) {
${kStep((i) => `round_bf16(a[${i}])`, (i) => `b_bf16(${i})`)}
    }
  } else if (P.bf16 == 0u) {
    for (var k = 0u; k < P.K; k++) {
${kStep((i) => `a[${i}]`, (i) => `b[${i}]`)}
    }
  } else {
    for (var k = 0u; k < P.K; k++) {
${kStep((i) => `round_bf16(a[${i}])`, (i) => `round_bf16(b[${i}])`)}
    }
  }
${rows.flatMap((i) => quads.map((j) => `  store4(r0 + ${i}u, c0 + ${4 * j}u, acc${i}_${j});`)).join('\n')}
}
fn store4(r: u32, col0: u32, acc: vec4f) {
  if (r >= P.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let col = col0 + j;
    if (col >= P.N) { return; }
    var value = acc[j];
    if (P.hasBias != 0u) { value += bias[col]; }
    if (P.accumulate != 0u) { value += c[r * P.N + col]; }
    c[r * P.N + col] = value;
  }
}`;
}

/**
 * B as bfloat16 words (P.bBf16, a frozen bf16 weight: Bf16Buffer): element i of B is value i of bWords, the low half
 * of word i/2 for even i, the high half for odd i, widened exactly (bf16 is the top half of a float32). Read as u32
 * words, so no float load can flush a word whose high value is a bf16 zero or subnormal. `b` is absent then.
 */
const BF16_WEIGHT = `fn b_bf16(i: u32) -> f32 {
  let word = bWords[i >> 1u];
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) != 0u));
}`;

/** a GEMM operand as the product sees it: rounded to bfloat16 (nearest even, NaN kept quiet) when P.bf16 */
const BF16_OPERAND = `fn operand(x: f32) -> f32 {
  if (P.bf16 == 0u) { return x; }
  let u = bitcast<u32>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) { return bitcast<f32>((u | 0x00400000u) & 0xffff0000u); }
  return bitcast<f32>(((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) << 16u);
}`;

export const KERNELS = {
  // ------------------------------------------------------------------------------------------ matrix products
  /**
   * c (M,N) [+]= op(a) (M,K) @ op(b) (K,N) [+ bias (N)]. transA: a stored (K,M); transB: b stored (N,K).
   * A 256-thread workgroup computes a TILE x TILE block of C (TILE = 64 or 128, a compile-time constant: see
   * gemmTile); K advances in steps of TK = 1024 / TILE through workgroup memory, where the A and B tiles are
   * stored k-major so that a thread's rows and columns are adjacent. Each thread owns (TILE/64)^2 blocks of 4x4
   * outputs, 64 apart (16 or 64 accumulators), and loads 4 elements of each tile, arranged so that neighbouring
   * threads read neighbouring addresses in every transpose.
   * bf16 rounds each operand to bfloat16 on its way into the tile (the reference's mixed precision; sums stay f32).
   * bBf16: B is a frozen bfloat16 weight, read from `bWords` (two values a word, see BF16_WEIGHT) instead of `b`;
   * set with bf16, so that A is rounded and the products are those of bf16 mode on the widened weight (rounding a
   * bf16 value again changes nothing). A flag, not a second kernel: every tile form takes a bf16 weight as it is.
   * The flags are uniforms, not compile-time constants: their branches are uniform across the workgroup (free on a
   * GPU), and one pipeline per tile size instead of 32 variants keeps shader compilation (seconds each on
   * SwiftShader) down.
   */
  gemm: {
    name: 'gemm',
    tensors: [{ name: 'c', type: 'f32', written: true }, { name: 'a', type: 'f32' }, { name: 'b', type: 'f32' },
      { name: 'bias', type: 'f32' }, { name: 'bWords', type: 'u32' }],
    scalars: { M: 'u32', N: 'u32', K: 'u32', transA: 'u32', transB: 'u32', accumulate: 'u32', bf16: 'u32', hasBias: 'u32',
      bBf16: 'u32' },
    grid: (s, c) => [Math.ceil(s.N / Number(c.TILE)), Math.ceil(s.M / Number(c.TILE)), 1],
    source: () => `
const TM: u32 = TILE;
const TN: u32 = TILE;
const TK: u32 = 1024u / TILE;
const BLOCKS: u32 = TILE / 64u;
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;
${BF16_OPERAND}
${BF16_WEIGHT}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  let tr = lid / 16u;
  let tc = lid % 16u;
  // acc[(bi * BLOCKS + bj) * 4 + i] holds row bi*64 + tr*4 + i, columns bj*64 + tc*4 + (0..3)
  var acc: array<vec4f, BLOCKS * BLOCKS * 4u>;
  for (var k0 = 0u; k0 < P.K; k0 += TK) {
    for (var l = 0u; l < 4u; l++) {
      let e = lid + l * 256u;
      var am: u32; var ak: u32;
      if (P.transA != 0u) { ak = e / TM; am = e % TM; } else { am = e / TK; ak = e % TK; }
      var x = 0.0;
      if (row0 + am < P.M && k0 + ak < P.K) {
        if (P.transA != 0u) { x = a[(k0 + ak) * P.M + row0 + am]; } else { x = a[(row0 + am) * P.K + k0 + ak]; }
      }
      As[ak * TM + am] = operand(x);
      var bn: u32; var bk: u32;
      if (P.transB != 0u) { bn = e / TK; bk = e % TK; } else { bk = e / TN; bn = e % TN; }
      var y = 0.0;
      if (col0 + bn < P.N && k0 + bk < P.K) {
        let bAt = select((k0 + bk) * P.N + col0 + bn, (col0 + bn) * P.K + k0 + bk, P.transB != 0u);
        if (P.bBf16 != 0u) { y = b_bf16(bAt); } else { y = b[bAt]; }
      }
      Bs[bk * TN + bn] = operand(y);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<vec4f, BLOCKS>;
      var bv: array<vec4f, BLOCKS>;
      for (var blk = 0u; blk < BLOCKS; blk++) {
        let ai = kk * TM + blk * 64u + tr * 4u;
        let bi = kk * TN + blk * 64u + tc * 4u;
        av[blk] = vec4f(As[ai], As[ai + 1u], As[ai + 2u], As[ai + 3u]);
        bv[blk] = vec4f(Bs[bi], Bs[bi + 1u], Bs[bi + 2u], Bs[bi + 3u]);
      }
      for (var bi = 0u; bi < BLOCKS; bi++) {
        for (var bj = 0u; bj < BLOCKS; bj++) {
          let o = (bi * BLOCKS + bj) * 4u;
          acc[o] += av[bi].x * bv[bj];
          acc[o + 1u] += av[bi].y * bv[bj];
          acc[o + 2u] += av[bi].z * bv[bj];
          acc[o + 3u] += av[bi].w * bv[bj];
        }
      }
    }
    workgroupBarrier();
  }
  for (var bi = 0u; bi < BLOCKS; bi++) {
    for (var i = 0u; i < 4u; i++) {
      let r = row0 + bi * 64u + tr * 4u + i;
      if (r >= P.M) { break; }
      for (var bj = 0u; bj < BLOCKS; bj++) {
        for (var j = 0u; j < 4u; j++) {
          let col = col0 + bj * 64u + tc * 4u + j;
          if (col >= P.N) { break; }
          var value = acc[(bi * BLOCKS + bj) * 4u + i][j];
          if (P.hasBias != 0u) { value += bias[col]; }
          if (P.accumulate != 0u) { value += c[r * P.N + col]; }
          c[r * P.N + col] = value;
        }
      }
    }
  }
}`,
  },

  /**
   * The GEMM of `gemm` without workgroup memory or barriers: a thread computes an RB x RB block of C (RB = 4 or 8, a
   * compile-time constant) straight from global memory, 8x8 threads per workgroup, k in order as the tiled kernel,
   * so the two give the same sums. Operands are read through strides (a(m, k) = a[m * aM + k * aK], b(k, n) =
   * b[k * bK + n * bN]: every transpose is one loop) with row and column indices clamped into range, so the inner
   * loop has no branch; the clamped lanes' results are not written. On a GPU (RB 4), for products too small to fill
   * it with tiles: 4x more workgroups than 64x64 tiles. On a CPU adapter (RB 8), at every size: SwiftShader runs each
   * barrier of the tiled kernel as a coroutine switch per group of lanes (a tiled 550x128x64 product 220 ms, direct
   * 15 ms), and with 8x8 blocks a k step loads 16 operands for 64 products instead of 8 for 16 (1.6x faster at
   * 550x128x64 and 256^3). The accumulators are named variables and the bf16 tests sit outside the k loop (one loop
   * each for float32, bf16 mode, and a bfloat16 B read from bWords as `gemm`'s bBf16): SwiftShader runs a
   * dynamically indexed array as memory and a branch in the loop as masked blocks.
   */
  gemmDirect: {
    name: 'gemmDirect',
    tensors: [{ name: 'c', type: 'f32', written: true }, { name: 'a', type: 'f32' }, { name: 'b', type: 'f32' },
      { name: 'bias', type: 'f32' }, { name: 'bWords', type: 'u32' }],
    scalars: { M: 'u32', N: 'u32', K: 'u32', aM: 'u32', aK: 'u32', bK: 'u32', bN: 'u32', accumulate: 'u32', bf16: 'u32',
      hasBias: 'u32', bBf16: 'u32' },
    grid: (s, c) => {
      const block = 8 * gemmDirectBlockOf(c);
      return [Math.ceil(s.N / block), Math.ceil(s.M / block), 1];
    },
    source: (c) => gemmDirectSource(gemmDirectBlockOf(c)),
  },

  /**
   * Column sums over a chunk of rows: dst[chunk * dstStride + col] (+)= sum of src[r * stride + col] for the rows r
   * of chunk wid.y (chunkRows each). One pass with many chunks writes partials, a second with one chunk adds them
   * up: the bias gradient and the norms' parameter gradients, in parallel over rows, deterministic, no atomics.
   */
  columnSum: {
    name: 'columnSum',
    tensors: [{ name: 'dst', type: 'f32', written: true }, { name: 'src', type: 'f32' }],
    scalars: { N: 'u32', rows: 'u32', chunkRows: 'u32', stride: 'u32', dstStride: 'u32', accumulate: 'u32' },
    grid: (s) => [Math.ceil(s.N / WG), Math.ceil(s.rows / s.chunkRows), 1],
    source: () => `${COLUMN_CHUNK_INDEX}
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += src[r * P.stride + col]; }
  let at = wid.y * P.dstStride + col;
  if (P.accumulate != 0u) { dst[at] += s; } else { dst[at] = s; }
}`,
  },

  // ------------------------------------------------------------------------------------------ embeddings
  /** ids (rows), table (V,C) -> out (rows,C) written or accumulated; one thread per output element (N = rows*C) */
  embeddingForward: {
    name: 'embeddingForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'ids', type: 'i32' }, { name: 'table', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let n = idx / P.C;
  let value = table[u32(ids[n]) * P.C + idx % P.C];
  if (ACCUMULATE) { out[idx] += value; } else { out[idx] = value; }`),
  },

  /**
   * embeddingForward over a frozen bfloat16 table read as u32 words (two values a word, value 2i in the low half of
   * word i, as BF16_WEIGHT): only the looked-up values are widened, nothing is staged. N = rows*C.
   */
  embeddingForwardBf16: {
    name: 'embeddingForwardBf16',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'ids', type: 'i32' }, { name: 'table', type: 'u32' }],
    scalars: { N: 'u32', C: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let n = idx / P.C;
  let e = u32(ids[n]) * P.C + idx % P.C;
  let word = table[e >> 1u];
  let value = bitcast<f32>(select(word << 16u, word & 0xffff0000u, (e & 1u) != 0u));
  if (ACCUMULATE) { out[idx] += value; } else { out[idx] = value; }`),
  },

  /**
   * The first half of the scatter-add backward, deterministic and sort-free: for each token n, links[n] = the next
   * token with the same id (-1: none) and links[N + n] = 1 when n is its id's first occurrence. O(N^2) id compares
   * in the worst case, no atomics; embeddingScatter then walks each chain in token order.
   */
  embeddingLinks: {
    name: 'embeddingLinks',
    tensors: [{ name: 'links', type: 'i32', written: true }, { name: 'ids', type: 'i32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let id = ids[idx];
  var next = -1;
  for (var m = idx + 1u; m < P.N; m++) { if (ids[m] == id) { next = i32(m); break; } }
  var first = 1;
  for (var m = 0u; m < idx; m++) { if (ids[m] == id) { first = 0; break; } }
  links[idx] = next;
  links[P.N + idx] = first;`),
  },

  /**
   * dtable[id] += dout[n] for every token n of each id, one thread per (first occurrence, column), adding in token
   * order exactly as the reference does (so the result is the reference's to the last bit). N = tokens * C.
   */
  embeddingScatter: {
    name: 'embeddingScatter',
    tensors: [{ name: 'dtable', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'ids', type: 'i32' },
      { name: 'links', type: 'i32' }],
    scalars: { N: 'u32', C: 'u32', tokens: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let n = idx / P.C;
  let c = idx % P.C;
  if (links[P.tokens + n] == 0) { return; }
  let slot = u32(ids[n]) * P.C + c;
  var acc = dtable[slot];
  var m = n;
  loop {
    acc += dout[m * P.C + c];
    let next = links[m];
    if (next < 0) { break; }
    m = u32(next);
  }
  dtable[slot] = acc;`),
  },

  // ------------------------------------------------------------------------------------------ normalisation
  /** inp (N,C), weight, bias -> out (N,C), mean (N), rstd (N); RT threads per row (rowThreads), two passes as the reference */
  layernormForward: {
    name: 'layernormForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'mean', type: 'f32', written: true },
      { name: 'rstd', type: 'f32', written: true }, { name: 'inp', type: 'f32' }, { name: 'weight', type: 'f32' },
      { name: 'bias', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32', eps: 'f32' },
    grid: rows,
    source: (k) => rowKernel(k, 'C', `
  let o = row * P.C;
  var s = 0.0;
  for (var c = sub; c < width; c += RT) { s += inp[o + c]; }
  let m = row_sum(s, lid) / f32(P.C);
  var v = 0.0;
  for (var c = sub; c < width; c += RT) { let d = inp[o + c] - m; v += d * d; }
  let rs = 1.0 / sqrt(row_sum(v, lid) / f32(P.C) + P.eps);
  for (var c = sub; c < width; c += RT) { out[o + c] = (inp[o + c] - m) * rs * weight[c] + bias[c]; }
  if (lead) { mean[row] = m; rstd[row] = rs; }`),
  },

  /** dinp (N,C) += the layernorm input gradient; RT threads per row (the parameter gradients: layernormParamGrads) */
  layernormBackward: {
    name: 'layernormBackward',
    tensors: [{ name: 'dinp', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'inp', type: 'f32' },
      { name: 'weight', type: 'f32' }, { name: 'mean', type: 'f32' }, { name: 'rstd', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32' },
    grid: rows,
    source: (k) => rowKernel(k, 'C', `
  let o = row * P.C;
  let m = mean[row];
  let s = rstd[row];
  var a = 0.0;
  var bsum = 0.0;
  for (var c = sub; c < width; c += RT) {
    let dnorm = dout[o + c] * weight[c];
    a += dnorm;
    bsum += dnorm * (inp[o + c] - m) * s;
  }
  let dnormMean = row_sum(a, lid) / f32(P.C);
  let dnormXhatMean = row_sum(bsum, lid) / f32(P.C);
  for (var c = sub; c < width; c += RT) {
    let xhat = (inp[o + c] - m) * s;
    dinp[o + c] += s * (dout[o + c] * weight[c] - dnormMean - xhat * dnormXhatMean);
  }`),
  },

  /**
   * The parameter gradients' partial sums over a chunk of rows (wid.y): partial (chunks, 2C) = (sum dout * xhat,
   * sum dout); columnSum then adds the chunks into dweight and dbias. N = C here, `rows` the row count.
   */
  layernormParamGrads: {
    name: 'layernormParamGrads',
    tensors: [{ name: 'partial', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'inp', type: 'f32' },
      { name: 'mean', type: 'f32' }, { name: 'rstd', type: 'f32' }],
    scalars: { N: 'u32', rows: 'u32', chunkRows: 'u32' },
    grid: (s) => [Math.ceil(s.N / WG), Math.ceil(s.rows / s.chunkRows), 1],
    source: () => `${COLUMN_CHUNK_INDEX}
  var dw = 0.0;
  var db = 0.0;
  for (var r = r0; r < r1; r++) {
    let d = dout[r * P.N + col];
    dw += d * (inp[r * P.N + col] - mean[r]) * rstd[r];
    db += d;
  }
  partial[wid.y * 2u * P.N + col] = dw;
  partial[wid.y * 2u * P.N + P.N + col] = db;
}`,
  },

  /** inp (N,C), weight -> out (N,C), rstd (N); RT threads per row */
  rmsnormForward: {
    name: 'rmsnormForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'rstd', type: 'f32', written: true },
      { name: 'inp', type: 'f32' }, { name: 'weight', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32', eps: 'f32' },
    grid: rows,
    source: (k) => rowKernel(k, 'C', `
  let o = row * P.C;
  var ss = 0.0;
  for (var c = sub; c < width; c += RT) { let x = inp[o + c]; ss += x * x; }
  let s = 1.0 / sqrt(row_sum(ss, lid) / f32(P.C) + P.eps);
  for (var c = sub; c < width; c += RT) { out[o + c] = weight[c] * (inp[o + c] * s); }
  if (lead) { rstd[row] = s; }`),
  },

  /** dinp (N,C) += s * w * dout - x * s^3 * mean(w * dout * x); RT threads per row */
  rmsnormBackward: {
    name: 'rmsnormBackward',
    tensors: [{ name: 'dinp', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'inp', type: 'f32' },
      { name: 'weight', type: 'f32' }, { name: 'rstd', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32' },
    grid: rows,
    source: (k) => rowKernel(k, 'C', `
  let o = row * P.C;
  let s = rstd[row];
  var dot = 0.0;
  for (var c = sub; c < width; c += RT) { dot += dout[o + c] * weight[c] * inp[o + c]; }
  let k = (row_sum(dot, lid) / f32(P.C)) * s * s * s;
  for (var c = sub; c < width; c += RT) { dinp[o + c] += s * dout[o + c] * weight[c] - inp[o + c] * k; }`),
  },

  /** partial (chunks, C) = sum over the chunk's rows of dout * inp * rstd; columnSum adds the chunks into dweight */
  rmsnormParamGrads: {
    name: 'rmsnormParamGrads',
    tensors: [{ name: 'partial', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'inp', type: 'f32' },
      { name: 'rstd', type: 'f32' }],
    scalars: { N: 'u32', rows: 'u32', chunkRows: 'u32' },
    grid: (s) => [Math.ceil(s.N / WG), Math.ceil(s.rows / s.chunkRows), 1],
    source: () => `${COLUMN_CHUNK_INDEX}
  var dw = 0.0;
  for (var r = r0; r < r1; r++) { dw += dout[r * P.N + col] * inp[r * P.N + col] * rstd[r]; }
  partial[wid.y * P.N + col] = dw;
}`,
  },

  // ------------------------------------------------------------------------------------------ rotary embedding
  /**
   * One thread per rotated pair (b, t, h, i < HD/2), N = B*T*H*HD/2; it reads both halves before writing, so out
   * may alias inp. BACKWARD applies the transpose, accumulated into out (dinp) when ACCUMULATE, else written.
   */
  rope: {
    name: 'rope',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'inp', type: 'f32' }, { name: 'cos', type: 'f32' },
      { name: 'sin', type: 'f32' }],
    scalars: { N: 'u32', T: 'u32', H: 'u32', half: 'u32', pos0: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let i = idx % P.half;
  let rest = idx / P.half;
  let t = (rest / P.H) % P.T;
  let o = rest * 2u * P.half;
  let co = (P.pos0 + t) * P.half + i;
  let c = cos[co];
  let s = sin[co];
  let x1 = inp[o + i];
  let x2 = inp[o + i + P.half];
  if (BACKWARD && ACCUMULATE) {
    out[o + i] += x1 * c + x2 * s;
    out[o + i + P.half] += x2 * c - x1 * s;
  } else if (BACKWARD) {
    out[o + i] = x1 * c + x2 * s;
    out[o + i + P.half] = x2 * c - x1 * s;
  } else {
    out[o + i] = x1 * c - x2 * s;
    out[o + i + P.half] = x2 * c + x1 * s;
  }`),
  },

  // ------------------------------------------------------------------------------------------ attention
  /**
   * Flash-style causal attention forward, also the decode step (pos0 > 0: queries are the last T of L = pos0 + T
   * keys). A workgroup takes 64 consecutive queries of one (b, h), one per thread; it walks the keys in tiles of TK
   * staged in workgroup memory, keeping a running max, sum and output row (online softmax rescaled once per tile),
   * and stops at the last key its last query can see. lse (B,NH,T) saved when hasLse. HD (and the tile TK)
   * are compile-time constants: they size the per-thread rows; the flags are uniforms (one pipeline per HD).
   */
  attentionForward: {
    name: 'attentionForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'lse', type: 'f32', written: true },
      { name: 'q', type: 'f32' }, { name: 'k', type: 'f32' }, { name: 'v', type: 'f32' }, { name: 'hidden', type: 'i32' }],
    scalars: { B: 'u32', T: 'u32', pos0: 'u32', NH: 'u32', NKV: 'u32', qStride: 'u32', kvStride: 'u32', scale: 'f32',
      hasLse: 'u32', hasHidden: 'u32' },
    grid: (s, c) => attentionGrid(s, c, s.NH),
    source: (c) => {
      const direct = attentionDirectOf(c);
      return `${NEG_BIG}
${queryRowKernelHead('P.pos0', direct)}
  var qr: array<f32, HD>;
  var acc: array<f32, HD>;
  if (valid) {
    let qo = (b * P.T + t) * P.qStride + h * HD;
    for (var i = 0u; i < HD; i++) { qr[i] = q[qo + i]; }
  }
  var m = NEG_BIG;
  var l = 0.0;
${keyTiles(direct, `P.pos0 + min(P.T, (wid.x + 1u) * ${ATTENTION_ROWS}u)`, `    if (valid) {
      var sc: array<f32, TK>;
      var tileMax = NEG_BIG;
      for (var j = 0u; j < TK; j++) {
        let s = s0 + j;
        var x = NEG_BIG;
        if (s <= last && !(s >= lo && s < hi)) {
          var dot = 0.0;
          for (var i = 0u; i < HD; i++) { dot += qr[i] * ${keyAt(direct, 'k', 'j', 'i')}; }
          x = dot * P.scale;
          tileMax = max(tileMax, x);
        }
        sc[j] = x;
      }
      if (tileMax > -1.0e38) {
        let mNew = max(m, tileMax);
        let correction = exp(m - mNew);
        l *= correction;
        for (var i = 0u; i < HD; i++) { acc[i] *= correction; }
        for (var j = 0u; j < TK; j++) {
          if (sc[j] > -1.0e38) {
            let p = exp(sc[j] - mNew);
            l += p;
            for (var i = 0u; i < HD; i++) { acc[i] += p * ${keyAt(direct, 'v', 'j', 'i')}; }
          }
        }
        m = mNew;
      }
    }`)}
  if (valid) {
    let oo = ((b * P.T + t) * P.NH + h) * HD;
    for (var i = 0u; i < HD; i++) { out[oo + i] = acc[i] / l; }
    if (P.hasLse != 0u) { lse[(b * P.NH + h) * P.T + t] = m + log(l); }
  }
}`;
    },
  },

  /** stats (B,NH,T,2) = (lse, D = dout . out) for each query row: what both backward passes need (N = B*NH*T) */
  attentionBackwardStats: {
    name: 'attentionBackwardStats',
    tensors: [{ name: 'stats', type: 'f32', written: true }, { name: 'lse', type: 'f32' }, { name: 'dout', type: 'f32' },
      { name: 'out', type: 'f32' }],
    scalars: { N: 'u32', T: 'u32', NH: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let t = idx % P.T;
  let bh = idx / P.T;
  let oo = (((bh / P.NH) * P.T + t) * P.NH + bh % P.NH) * HD;
  var d = 0.0;
  for (var i = 0u; i < HD; i++) { d += dout[oo + i] * out[oo + i]; }
  stats[2u * idx] = lse[idx];
  stats[2u * idx + 1u] = d;`),
  },

  /** dq += sum over visible keys of ds * k; one thread per query, keys in tiles as in the forward */
  attentionBackwardQuery: {
    name: 'attentionBackwardQuery',
    tensors: [{ name: 'dq', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'q', type: 'f32' },
      { name: 'k', type: 'f32' }, { name: 'v', type: 'f32' }, { name: 'stats', type: 'f32' }, { name: 'hidden', type: 'i32' }],
    scalars: { B: 'u32', T: 'u32', NH: 'u32', NKV: 'u32', qStride: 'u32', kvStride: 'u32', scale: 'f32', hasHidden: 'u32' },
    grid: (s, c) => attentionGrid(s, c, s.NH),
    source: (c) => {
      const direct = attentionDirectOf(c);
      return `
${queryRowKernelHead('0u', direct)}
  var qr: array<f32, HD>;
  var dor: array<f32, HD>;
  var dqr: array<f32, HD>;
  let qo = (b * P.T + t) * P.qStride + h * HD;
  var rowLse = 0.0;
  var rowD = 0.0;
  if (valid) {
    let oo = ((b * P.T + t) * P.NH + h) * HD;
    for (var i = 0u; i < HD; i++) { qr[i] = q[qo + i]; dor[i] = dout[oo + i]; }
    let r = (b * P.NH + h) * P.T + t;
    rowLse = stats[2u * r];
    rowD = stats[2u * r + 1u];
  }
${keyTiles(direct, `min(P.T, (wid.x + 1u) * ${ATTENTION_ROWS}u)`, `    if (valid) {
      for (var j = 0u; j < TK; j++) {
        let s = s0 + j;
        if (s <= last && !(s >= lo && s < hi)) {
          var dot = 0.0;
          var dp = 0.0;
          for (var i = 0u; i < HD; i++) { dot += qr[i] * ${keyAt(direct, 'k', 'j', 'i')}; dp += dor[i] * ${keyAt(direct, 'v', 'j', 'i')}; }
          let p = exp(dot * P.scale - rowLse);
          let ds = p * (dp - rowD) * P.scale;
          for (var i = 0u; i < HD; i++) { dqr[i] += ds * ${keyAt(direct, 'k', 'j', 'i')}; }
        }
      }
    }`)}
  if (valid) {
    for (var i = 0u; i < HD; i++) { dq[qo + i] += dqr[i]; }
  }
}`;
    },
  },

  /**
   * dk, dv for one key per thread, summed over the query heads of its group and the queries that see it, in tiles
   * of TK queries: tiled, 64 keys of one (b, kv head) per workgroup with the query tiles staged in workgroup memory;
   * direct, the queries read from global memory. Each key has one writer: no atomics.
   */
  attentionBackwardKeyValue: {
    name: 'attentionBackwardKeyValue',
    tensors: [{ name: 'dk', type: 'f32', written: true }, { name: 'dv', type: 'f32', written: true },
      { name: 'dout', type: 'f32' }, { name: 'q', type: 'f32' }, { name: 'k', type: 'f32' }, { name: 'v', type: 'f32' },
      { name: 'stats', type: 'f32' }, { name: 'hidden', type: 'i32' }],
    scalars: { B: 'u32', T: 'u32', NH: 'u32', NKV: 'u32', qStride: 'u32', kvStride: 'u32', scale: 'f32', hasHidden: 'u32' },
    grid: (s, c) => attentionGrid(s, c, s.NKV),
    source: (c) => {
      const direct = attentionDirectOf(c);
      // query j of the current tile: element i of its q row or dout row, its lse or D
      const row = '(b * P.T + t0 + j)';
      const stat = '2u * ((b * P.NH + h) * P.T + t0 + j)';
      const qAt = direct ? `q[${row} * P.qStride + h * HD + i]` : 'Qs[j * HD + i]';
      const oAt = direct ? `dout[(${row} * P.NH + h) * HD + i]` : 'Os[j * HD + i]';
      const lAt = direct ? `stats[${stat}]` : 'Ls[j]';
      const dAt = direct ? `stats[${stat} + 1u]` : 'Ds[j]';
      const stage = direct ? '' : `      for (var e = lid; e < TK * HD; e += ${ATTENTION_ROWS}u) {
        let t = t0 + e / HD;
        var qx = 0.0;
        var ox = 0.0;
        if (t < P.T) {
          qx = q[(b * P.T + t) * P.qStride + h * HD + e % HD];
          ox = dout[((b * P.T + t) * P.NH + h) * HD + e % HD];
        }
        Qs[e] = qx;
        Os[e] = ox;
      }
      for (var j = lid; j < TK; j += ${ATTENTION_ROWS}u) {
        let t = t0 + j;
        var rl = 0.0;
        var rd = 0.0;
        if (t < P.T) {
          let r = (b * P.NH + h) * P.T + t;
          rl = stats[2u * r];
          rd = stats[2u * r + 1u];
        }
        Ls[j] = rl;
        Ds[j] = rd;
      }
      workgroupBarrier();`;
      return `
${positionPerThread(direct, 'P.NKV', `var<workgroup> Qs: array<f32, TK * HD>;
var<workgroup> Os: array<f32, TK * HD>;
var<workgroup> Ls: array<f32, TK>;
var<workgroup> Ds: array<f32, TK>;`)}
  let kvh = head;
  let s = t;
  // the first query tile: the workgroup's first key when tiled (all its threads walk the same tiles), else this key
  let firstQuery = ${direct ? 's' : `wid.x * ${ATTENTION_ROWS}u`};
  let group = P.NH / P.NKV;
  var lo = 0u;
  var hi = 0u;
  if (P.hasHidden != 0u) { lo = u32(hidden[2u * b]); hi = u32(hidden[2u * b + 1u]); }
  let inHiddenRange = s >= lo && s < hi;
  var kr: array<f32, HD>;
  var vr: array<f32, HD>;
  var dkr: array<f32, HD>;
  var dvr: array<f32, HD>;
  let ko = (b * P.T + s) * P.kvStride + kvh * HD;
  if (valid) {
    for (var i = 0u; i < HD; i++) { kr[i] = k[ko + i]; vr[i] = v[ko + i]; }
  }
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var t0 = firstQuery; t0 < P.T; t0 += TK) {
${stage}
      if (valid) {
        for (var j = 0u; j < TK; j++) {
          let t = t0 + j;
          if (t < P.T && t >= s && !(inHiddenRange && t >= hi)) {
            var dot = 0.0;
            var dp = 0.0;
            for (var i = 0u; i < HD; i++) { dot += ${qAt} * kr[i]; dp += ${oAt} * vr[i]; }
            let p = exp(dot * P.scale - ${lAt});
            let ds = p * (dp - ${dAt}) * P.scale;
            for (var i = 0u; i < HD; i++) {
              dkr[i] += ds * ${qAt};
              dvr[i] += p * ${oAt};
            }
          }
        }
      }
${direct ? '' : '      workgroupBarrier();'}
    }
  }
  if (valid) {
    for (var i = 0u; i < HD; i++) { dk[ko + i] += dkr[i]; dv[ko + i] += dvr[i]; }
  }
}`;
    },
  },

  // ------------------------------------------------------------------------------------------ pointwise
  swigluForward: {
    name: 'swigluForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'gate', type: 'f32' }, { name: 'up', type: 'f32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let g = gate[idx];
  out[idx] = g * sigmoid(g) * up[idx];`, SIGMOID),
  },

  swigluBackward: {
    name: 'swigluBackward',
    tensors: [{ name: 'dgate', type: 'f32', written: true }, { name: 'dup', type: 'f32', written: true },
      { name: 'dout', type: 'f32' }, { name: 'gate', type: 'f32' }, { name: 'up', type: 'f32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let g = gate[idx];
  let sg = sigmoid(g);
  let d = dout[idx];
  let du = d * g * sg;
  let dg = d * up[idx] * sg * (1.0 + g * (1.0 - sg));
  if (ACCUMULATE) { dup[idx] += du; dgate[idx] += dg; } else { dup[idx] = du; dgate[idx] = dg; }`, SIGMOID),
  },

  geluForward: {
    name: 'geluForward',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'inp', type: 'f32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let x = inp[idx];
  out[idx] = 0.5 * x * one_plus_tanh(GELU_K * (x + 0.044715 * x * x * x));`, GELU),
  },

  geluBackward: {
    name: 'geluBackward',
    tensors: [{ name: 'dinp', type: 'f32', written: true }, { name: 'dout', type: 'f32' }, { name: 'inp', type: 'f32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let x = inp[idx];
  let u = GELU_K * (x + 0.044715 * x * x * x);
  let grad = 0.5 * one_plus_tanh(u) + 0.5 * x * sech_squared(u) * GELU_K * (1.0 + 3.0 * 0.044715 * x * x);
  if (ACCUMULATE) { dinp[idx] += grad * dout[idx]; } else { dinp[idx] = grad * dout[idx]; }`, GELU),
  },

  /** out = a + b; out may alias a or b (each element read before it is written, by one thread) */
  add: {
    name: 'add',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'a', type: 'f32' }, { name: 'b', type: 'f32' }],
    scalars: { N: 'u32' },
    grid: elements,
    source: () => elementwise('  out[idx] = a[idx] + b[idx];'),
  },

  axpy: {
    name: 'axpy',
    tensors: [{ name: 'dst', type: 'f32', written: true }, { name: 'src', type: 'f32' }],
    scalars: { N: 'u32', alpha: 'f32' },
    grid: elements,
    source: () => elementwise('  dst[idx] += P.alpha * src[idx];'),
  },

  scale: {
    name: 'scale',
    tensors: [{ name: 'x', type: 'f32', written: true }],
    scalars: { N: 'u32', factor: 'f32' },
    grid: elements,
    source: () => elementwise('  x[idx] *= P.factor;'),
  },

  // ------------------------------------------------------------------------------------------ data movement
  /** x (rows, C), s (rows) -> x[i, :] *= s[i]; N = rows * C */
  scaleRows: {
    name: 'scaleRows',
    tensors: [{ name: 'x', type: 'f32', written: true }, { name: 's', type: 'f32' }],
    scalars: { N: 'u32', C: 'u32' },
    grid: elements,
    source: () => elementwise('  x[idx] *= s[idx / P.C];'),
  },

  /** src (rows of `width`, srcStride apart) -> dst (rows, dstStride apart); N = rows * width */
  copyRows: {
    name: 'copyRows',
    tensors: [{ name: 'dst', type: 'f32', written: true }, { name: 'src', type: 'f32' }],
    scalars: { N: 'u32', width: 'u32', dstStride: 'u32', srcStride: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let row = idx / P.width;
  let col = idx % P.width;
  dst[row * P.dstStride + col] = src[row * P.srcStride + col];`),
  },

  /**
   * inverted dropout, the reference's mask to the bit: element i is kept when mix32(key ^ (i * 0x9e3779b9)) >=
   * threshold (= ceil(p 2^32), the same test on integers as the reference's on doubles). FORWARD writes out = inp *
   * inv or 0; otherwise dinp += dout * inv where kept.
   */
  dropout: {
    name: 'dropout',
    tensors: [{ name: 'out', type: 'f32', written: true }, { name: 'inp', type: 'f32' }],
    scalars: { N: 'u32', key: 'u32', threshold: 'u32', inv: 'f32' },
    grid: elements,
    source: () => elementwise(`
  let keep = mix32(P.key ^ (idx * 0x9e3779b9u)) >= P.threshold;
  if (FORWARD) { out[idx] = select(0.0, inp[idx] * P.inv, keep); }
  else if (keep) { out[idx] += inp[idx] * P.inv; }`, `
// the "lowbias32" integer hash of src/backend/kernels.ts (mix32), in u32 arithmetic that wraps as Math.imul does
fn mix32(v: u32) -> u32 {
  var x = v;
  x = x ^ (x >> 16u);
  x = x * 0x21f0aaadu;
  x = x ^ (x >> 15u);
  x = x * 0x735a2d97u;
  return x ^ (x >> 15u);
}`),
  },

  // ------------------------------------------------------------------------------------------ loss head
  /**
   * logits (N,V), targets -> logp (N), lse (N); RT threads per row (rowThreads), one pass: each lane keeps a running
   * (max, sum of exp(x - max)) over its columns, and the lanes' pairs combine in a tree.
   */
  logprobForward: {
    name: 'logprobForward',
    tensors: [{ name: 'logp', type: 'f32', written: true }, { name: 'lse', type: 'f32', written: true },
      { name: 'logits', type: 'f32' }, { name: 'targets', type: 'i32' }],
    scalars: { N: 'u32', V: 'u32' },
    grid: rows,
    source: (k) => rowKernel(k, 'V', `
  let o = row * P.V;
  var m = NEG_BIG;
  var s = 0.0;
  for (var j = sub; j < width; j += RT) {
    let x = logits[o + j];
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
${rowTree(rowThreadsOf(k), 'redMax[lid] = m; redSum[lid] = s;', `      let m2 = redMax[lid + stride];
      let top = max(m, m2);
      s = s * exp(m - top) + redSum[lid + stride] * exp(m2 - top);
      m = top;`)}
  if (lead) {
    let tgt = targets[row];
    if (tgt < 0) {
      logp[row] = 0.0;
      lse[row] = 0.0;
    } else {
      let rowLse = m + log(s);
      lse[row] = rowLse;
      logp[row] = logits[o + u32(tgt)] - rowLse;
    }
  }`, `${NEG_BIG}\n${rowArrays(rowThreadsOf(k), { redMax: 'f32', redSum: 'f32' })}`),
  },

  /** dlogits (N,V) = dlogp * (onehot - softmax), written; one thread per element, so dlogits may alias logits */
  logprobBackward: {
    name: 'logprobBackward',
    tensors: [{ name: 'dlogits', type: 'f32', written: true }, { name: 'dlogp', type: 'f32' }, { name: 'logits', type: 'f32' },
      { name: 'lse', type: 'f32' }, { name: 'targets', type: 'i32' }],
    scalars: { N: 'u32', V: 'u32' },
    grid: elements,
    source: () => elementwise(`
  let row = idx / P.V;
  let tgt = targets[row];
  if (tgt < 0) { dlogits[idx] = 0.0; return; }
  let g = dlogp[row];
  var value = -g * exp(logits[idx] - lse[row]);
  if (idx % P.V == u32(tgt)) { value += g; }
  dlogits[idx] = value;`),
  },

  /** mean (N) and argmax (N, first maximal index) of each logits row; RT threads per row (rowThreads) */
  logitsStats: {
    name: 'logitsStats',
    tensors: [{ name: 'mean', type: 'f32', written: true }, { name: 'argmax', type: 'i32', written: true },
      { name: 'logits', type: 'f32' }],
    scalars: { N: 'u32', V: 'u32' },
    grid: rows,
    source: (k) => rowKernel(k, 'V', `
  let o = row * P.V;
  var s = 0.0;
  var best = 0.0;
  var bestAt = NONE;
  for (var j = sub; j < width; j += RT) {
    let x = logits[o + j];
    s += x;
    if (bestAt == NONE || x > best) { best = x; bestAt = j; }
  }
${rowTree(rowThreadsOf(k), 'redSum[lid] = s; redBest[lid] = best; redAt[lid] = bestAt;', `      s += redSum[lid + stride];
      let otherAt = redAt[lid + stride];
      let other = redBest[lid + stride];
      if (otherAt != NONE && (bestAt == NONE || other > best || (other == best && otherAt < bestAt))) {
        best = other;
        bestAt = otherAt;
      }`)}
  if (lead) {
    mean[row] = s / f32(P.V);
    argmax[row] = i32(bestAt);
  }`, `const NONE: u32 = 0xffffffffu;\n${rowArrays(rowThreadsOf(k), { redSum: 'f32', redBest: 'f32', redAt: 'u32' })}`),
  },

  // ------------------------------------------------------------------------------------------ optimizer
  /** torch.optim.AdamW, one thread per element; the step-dependent factors come from the host in float64 */
  adamwStep: {
    name: 'adamwStep',
    tensors: [{ name: 'params', type: 'f32', written: true }, { name: 'grads', type: 'f32' },
      { name: 'm', type: 'f32', written: true }, { name: 'v', type: 'f32', written: true }],
    scalars: { N: 'u32', beta1: 'f32', beta2: 'f32', eps: 'f32', stepSize: 'f32', sqrtBc2: 'f32', decay: 'f32' },
    grid: elements,
    source: () => elementwise(`
  let g = grads[idx];
  let mi = P.beta1 * m[idx] + (1.0 - P.beta1) * g;
  let vi = P.beta2 * v[idx] + (1.0 - P.beta2) * g * g;
  m[idx] = mi;
  v[idx] = vi;
  params[idx] = params[idx] * P.decay - P.stepSize * mi / (sqrt(vi) / P.sqrtBc2 + P.eps);`),
  },

  /**
   * One level of a barrier-free reduction: partial[j] = the sum of x[i]^2 (SQUARE) or x[i] over i = j, j + N,
   * j + 2N, ... < count, one thread per partial (N = ceil(count / REDUCE_FOLD)); neighbouring threads read
   * neighbouring elements. Levels repeat on the partials until one is left (kernels.ts): fixed shares and orders,
   * so deterministic. No workgroup tree: barriers are what a CPU Vulkan (SwiftShader) executes slowest, and a
   * GPU streams this at memory speed either way.
   */
  reduceSum: {
    name: 'reduceSum',
    tensors: [{ name: 'partial', type: 'f32', written: true }, { name: 'x', type: 'f32' }],
    scalars: { N: 'u32', count: 'u32' },
    grid: elements,
    source: () => elementwise(`
  var s = 0.0;
  for (var i = idx; i < P.count; i += P.N) {
    let value = x[i];
    if (SQUARE) { s += value * value; } else { s += value; }
  }
  partial[idx] = s;`),
  },
} as const satisfies Record<string, KernelSpec>;

export type KernelName = keyof typeof KERNELS;
