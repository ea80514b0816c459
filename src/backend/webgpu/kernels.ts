// The kernel interface of src/backend/kernels.ts over backend-owned buffers: same names, argument order, shapes
// and accumulate/write semantics, with GpuTensor views in place of typed arrays. Each call records one or more
// dispatches of ./kernel-table.ts in the runtime's batch and returns at once; results are read with an awaited
// runtime.download. The differences from the host interface:
// - there is no synchronous sumSquares: sumSquaresInto writes a one-element tensor (a GPU value is only readable
//   by awaiting it);
// - bf16 matmul mode rounds operands to bfloat16 like the reference, but computes in float32 (no speed gain):
//   WebGPU has no bfloat16, and `shader-f16` is IEEE half, a different format (see README.md);
// - setThreads is accepted and ignored (the GPU schedules itself).
import { Bf16Buffer, bf16Elements, type Backend, type FloatArray } from '../kernels.js';
import type { GpuTensor } from './buffers.js';
import { COLUMN_CHUNK_ROWS, KERNELS, REDUCE_FOLD, attentionDirect, attentionTile, gemmTile, rowThreads, type GemmTile, type RowThreads } from './kernel-table.js';
import type { WebGpuRuntime } from './runtime.js';

function requireEvenHeads(what: string, NH: number, NKV: number): void {
  if (!(NKV >= 1 && NH % NKV === 0)) throw new RangeError(`${what}: NH (${NH}) must be a multiple of NKV (${NKV})`);
}

/**
 * Throws unless each view holds at least the elements its shape reaches. A GPU does not fault on an index past a
 * binding (robust access clamps or drops it), so without this a wrong size would give silently wrong numbers.
 */
function requireLengths(what: string, needs: Readonly<Record<string, readonly [GpuTensor | null | undefined, number]>>): void {
  for (const [name, [tensor, elements]] of Object.entries(needs)) {
    if (tensor && tensor.length < elements) {
      throw new RangeError(`${what}: ${name} holds ${tensor.length} elements, the shape needs ${elements}`);
    }
  }
}

/** Throws unless a bfloat16 buffer holds at least `values` values (its words are checked by requireLengths). */
function requireBf16Length(what: string, weight: Bf16Buffer<GpuTensor>, values: number): void {
  if (weight.length < values) throw new RangeError(`${what}: weight holds ${weight.length} bfloat16 values, the shape needs ${values}`);
}

/** elements a strided (rows, width) view reaches: the last row's start plus its width */
function stridedExtent(rows: number, stride: number, width: number): number {
  return rows === 0 ? 0 : (rows - 1) * stride + width;
}

export class WebGpuKernels implements Backend<GpuTensor, GpuTensor> {
  readonly name = 'webgpu';
  private matmulBf16 = false;

  constructor(readonly runtime: WebGpuRuntime) {
    this.barrierFree = runtime.info.isSoftware;
  }

  // ---------------------------------------------------------------- memory
  /** a zeroed float32 tensor (the interface promises zeros; the runtime's alloc leaves contents undefined) */
  allocFloats(n: number): GpuTensor {
    const t = this.runtime.alloc(n, 'f32');
    this.runtime.zero(t);
    return t;
  }

  allocInts(n: number): GpuTensor {
    const t = this.runtime.alloc(n, 'i32');
    this.runtime.zero(t);
    return t;
  }

  free(x: GpuTensor): void {
    this.runtime.free(x);
  }

  view(x: GpuTensor, offset: number, length: number): GpuTensor {
    return x.view(offset, length);
  }

  viewInts(x: GpuTensor, offset: number, length: number): GpuTensor {
    return x.view(offset, length);
  }

  lengthOf(x: GpuTensor): number {
    return x.length;
  }

  upload(dst: GpuTensor, src: FloatArray): void {
    this.runtime.upload(dst, src instanceof Float32Array ? src : Float32Array.from(src));
  }

  uploadInts(dst: GpuTensor, src: Int32Array): void {
    this.runtime.upload(dst, src);
  }

  download(src: GpuTensor): Promise<Float32Array> {
    return this.runtime.download(src);
  }

  downloadInts(src: GpuTensor): Promise<Int32Array> {
    return this.runtime.downloadInt32(src);
  }

  setThreads(_n: number): void { /* the GPU schedules its own threads */ }
  getThreads(): number { return 1; }
  setMatmulBf16(on: boolean): void { this.matmulBf16 = on; }
  getMatmulBf16(): boolean { return this.matmulBf16; }

  private gemmTileOverride: GemmTile | null = null;

  /**
   * Kernel forms by adapter. On a GPU (false) each operation picks its form by shape: tiles through workgroup memory
   * for large products and long sequences, a whole workgroup per wide row (gemmTile, attentionDirect, rowThreads).
   * On a CPU adapter (SwiftShader, llvmpipe: true) always the barrier-free forms (gemmDirect, direct attention, one
   * thread per row): a CPU has no workgroup memory to gain from, and SwiftShader runs every workgroupBarrier as a
   * coroutine switch per group of lanes, so a tiled 550x128x64 product took 220 ms there against 15 ms direct.
   */
  private barrierFree: boolean;
  private attentionDirectOverride: boolean | null = null;

  /** the forms by adapter (null: true on a software adapter), see barrierFree: for the tests and bench/webgpu */
  setBarrierFree(on: boolean | null): void { this.barrierFree = on ?? this.runtime.info.isSoftware; }
  getBarrierFree(): boolean { return this.barrierFree; }

  /** forces the attention kernels' form (null: by adapter and key count): for the parity tests, to run each */
  setAttentionDirect(direct: boolean | null): void { this.attentionDirectOverride = direct; }

  private attentionDirect(keys: number): boolean {
    return this.attentionDirectOverride ?? (this.barrierFree || attentionDirect(keys));
  }

  /** threads per row of the row kernels: by width on a GPU (rowThreads), one on a CPU adapter */
  private rowThreads(width: number): RowThreads {
    return this.barrierFree ? 1 : rowThreads(width);
  }

  /** forces the GEMM kernel (null: by adapter and shape, see barrierFree): for bench/webgpu and the parity tests, to run each */
  setGemmTile(tile: GemmTile | null): void { this.gemmTileOverride = tile; }

  // ---------------------------------------------------------------- matrix products
  /** c (M,N) = op(a) (M,K) @ op(b) (K,N) [+ c]; transA: a stored (K,M); transB: b stored (N,K) */
  gemm(c: GpuTensor, a: GpuTensor, b: GpuTensor, M: number, N: number, K: number, transA: boolean, transB: boolean,
    accumulate: boolean): void {
    requireLengths('gemm', { c: [c, M * N], a: [a, M * K], b: [b, K * N] });
    this.gemmWithBias(c, a, b, null, M, N, K, transA, transB, accumulate);
  }

  /**
   * The GEMM kernels' call; b may be a frozen bfloat16 weight, which they read as u32 words in place (bBf16) with
   * bf16 products forced on: a widened copy would take twice the weight's memory, the very thing bf16 weights save.
   */
  private gemmWithBias(c: GpuTensor, a: GpuTensor, b: GpuTensor | Bf16Buffer<GpuTensor>, bias: GpuTensor | null, M: number,
    N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean): void {
    if (K === 0 && !accumulate && !bias) {
      // an empty sum: c = 0 (the tiled kernel would still run, but this states it)
      this.runtime.zero(c.view(0, M * N));
      return;
    }
    const tile = this.gemmTileOverride ?? (this.barrierFree ? 'direct64' : gemmTile(M, N, K));
    const bf16Weight = b instanceof Bf16Buffer;
    const flags = { accumulate: Number(accumulate), bf16: Number(this.matmulBf16 || bf16Weight), hasBias: Number(bias !== null),
      bBf16: Number(bf16Weight) };
    const operands = bf16Weight ? { c, a, b: null, bias, bWords: b.data.as('u32') } : { c, a, b, bias, bWords: null };
    if (tile === 'direct32' || tile === 'direct64') {
      // strides of a(m, k) and b(k, n) in their stored layouts
      this.runtime.dispatch(KERNELS.gemmDirect, operands, {
        M, N, K, aM: transA ? 1 : K, aK: transA ? M : 1, bK: transB ? 1 : N, bN: transB ? K : 1, ...flags,
      }, { RB: tile === 'direct32' ? 4 : 8 });
      return;
    }
    this.runtime.dispatch(KERNELS.gemm, operands, {
      M, N, K, transA: Number(transA), transB: Number(transB), ...flags,
    }, { TILE: tile });
  }

  /** inp (N,C), weight (OC,C), bias (OC) | null -> out (N,OC) written: out = inp @ weight^T + bias */
  matmulForward(out: GpuTensor, inp: GpuTensor, weight: GpuTensor, bias: GpuTensor | null, N: number, C: number,
    OC: number): void {
    requireLengths('matmulForward', { out: [out, N * OC], inp: [inp, N * C], weight: [weight, OC * C], bias: [bias, OC] });
    this.gemmWithBias(out, inp, weight, bias, N, OC, C, false, true, false);
  }

  /** dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) accumulated or written, dweight (OC,C), dbias (OC) accumulated */
  matmulBackward(dinp: GpuTensor | null, dweight: GpuTensor | null, dbias: GpuTensor | null, dout: GpuTensor,
    inp: GpuTensor, weight: GpuTensor, N: number, C: number, OC: number, accumulate: boolean): void {
    requireLengths('matmulBackward', { dinp: [dinp, N * C], dweight: [dweight, OC * C], dbias: [dbias, OC], dout: [dout, N * OC],
      inp: [inp, N * C], weight: [weight, OC * C] });
    if (dinp) this.gemm(dinp, dout, weight, N, C, OC, false, false, accumulate);
    if (dweight) this.gemm(dweight, dout, inp, OC, C, N, true, false, true);
    if (dbias) this.addColumnSums(dbias, dout, OC, N, OC);
  }

  // ---------------------------------------------------------------- frozen bfloat16 weights
  // The GEMM kernels read the weight's u32 words in place (gemmWithBias); bf16 products whatever setMatmulBf16 says.

  /** inp (N,C), weight (OC,C) bf16, bias (OC) | null -> out (N,OC) written: out = bf16(inp) @ weight^T + bias */
  matmulForwardBf16(out: GpuTensor, inp: GpuTensor, weight: Bf16Buffer<GpuTensor>, bias: GpuTensor | null, N: number, C: number,
    OC: number): void {
    requireBf16Length('matmulForwardBf16', weight, OC * C);
    requireLengths('matmulForwardBf16', { out: [out, N * OC], inp: [inp, N * C], weight: [weight.data, bf16Elements(OC * C)], bias: [bias, OC] });
    this.gemmWithBias(out, inp, weight, bias, N, OC, C, false, true, false);
  }

  /** dout (N,OC), weight (OC,C) bf16 -> dinp (N,C): dinp += bf16(dout) @ weight, or = when not `accumulate` */
  matmulBackwardBf16(dinp: GpuTensor, dout: GpuTensor, weight: Bf16Buffer<GpuTensor>, N: number, C: number, OC: number,
    accumulate: boolean): void {
    requireBf16Length('matmulBackwardBf16', weight, OC * C);
    requireLengths('matmulBackwardBf16', { dinp: [dinp, N * C], dout: [dout, N * OC], weight: [weight.data, bf16Elements(OC * C)] });
    this.gemmWithBias(dinp, dout, weight, null, N, C, OC, false, false, accumulate);
  }

  /** ids (N) int32, table (V,C) bf16 -> out (N,C) written, or accumulated; the table's u32 words read in place */
  embeddingForwardBf16(out: GpuTensor, ids: GpuTensor, table: Bf16Buffer<GpuTensor>, N: number, C: number, accumulate: boolean): void {
    requireLengths('embeddingForwardBf16', { out: [out, N * C], ids: [ids, N] });
    this.runtime.dispatch(KERNELS.embeddingForwardBf16, { out, ids, table: table.data.as('u32') }, { N: N * C, C }, { ACCUMULATE: accumulate });
  }

  /**
   * dst (cols) += column sums of src (rows, cols; rows `stride` apart). Over many rows, partial sums of row chunks
   * first (parallel over rows), then one pass adds the chunks: no thread walks thousands of rows alone.
   */
  private addColumnSums(dst: GpuTensor, src: GpuTensor, cols: number, rows: number, stride: number): void {
    if (rows === 0 || cols === 0) return;
    if (rows <= COLUMN_CHUNK_ROWS) {
      this.runtime.dispatch(KERNELS.columnSum, { dst, src },
        { N: cols, rows, chunkRows: rows, stride, dstStride: 0, accumulate: 1 });
      return;
    }
    const chunks = Math.ceil(rows / COLUMN_CHUNK_ROWS);
    const partial = this.runtime.scratch(chunks * cols);
    this.runtime.dispatch(KERNELS.columnSum, { dst: partial, src },
      { N: cols, rows, chunkRows: COLUMN_CHUNK_ROWS, stride, dstStride: cols, accumulate: 0 });
    this.runtime.dispatch(KERNELS.columnSum, { dst, src: partial },
      { N: cols, rows: chunks, chunkRows: chunks, stride: cols, dstStride: 0, accumulate: 1 });
  }

  // ---------------------------------------------------------------- embeddings
  /** ids (N) int32, table (V,C) -> out (N,C) written, or accumulated */
  embeddingForward(out: GpuTensor, ids: GpuTensor, table: GpuTensor, N: number, C: number, accumulate: boolean): void {
    requireLengths('embeddingForward', { out: [out, N * C], ids: [ids, N] });
    this.runtime.dispatch(KERNELS.embeddingForward, { out, ids, table }, { N: N * C, C }, { ACCUMULATE: accumulate });
  }

  /** dout (N,C), ids (N) -> dtable (V,C) accumulated; deterministic (token order per row, no atomics) */
  embeddingBackward(dtable: GpuTensor, dout: GpuTensor, ids: GpuTensor, N: number, C: number): void {
    requireLengths('embeddingBackward', { dout: [dout, N * C], ids: [ids, N] });
    if (N === 0 || C === 0) return;
    const links = this.runtime.scratch(2 * N, 'i32');
    this.runtime.dispatch(KERNELS.embeddingLinks, { links, ids }, { N });
    this.runtime.dispatch(KERNELS.embeddingScatter, { dtable, dout, ids, links }, { N: N * C, C, tokens: N });
  }

  // ---------------------------------------------------------------- normalisation
  layernormForward(out: GpuTensor, mean: GpuTensor, rstd: GpuTensor, inp: GpuTensor, weight: GpuTensor, bias: GpuTensor,
    N: number, C: number, eps: number): void {
    requireLengths('layernormForward', { out: [out, N * C], mean: [mean, N], rstd: [rstd, N], inp: [inp, N * C], weight: [weight, C], bias: [bias, C] });
    this.runtime.dispatch(KERNELS.layernormForward, { out, mean, rstd, inp, weight, bias }, { N, C, eps }, { RT: this.rowThreads(C) });
  }

  layernormBackward(dinp: GpuTensor, dweight: GpuTensor | null, dbias: GpuTensor | null, dout: GpuTensor,
    inp: GpuTensor, weight: GpuTensor, mean: GpuTensor, rstd: GpuTensor, N: number, C: number): void {
    requireLengths('layernormBackward', { dinp: [dinp, N * C], dweight: [dweight, C], dbias: [dbias, C], dout: [dout, N * C],
      inp: [inp, N * C], weight: [weight, C], mean: [mean, N], rstd: [rstd, N] });
    this.runtime.dispatch(KERNELS.layernormBackward, { dinp, dout, inp, weight, mean, rstd }, { N, C }, { RT: this.rowThreads(C) });
    if (!(dweight || dbias) || N === 0) return;
    const chunks = Math.ceil(N / COLUMN_CHUNK_ROWS);
    const partial = this.runtime.scratch(chunks * 2 * C);
    this.runtime.dispatch(KERNELS.layernormParamGrads, { partial, dout, inp, mean, rstd },
      { N: C, rows: N, chunkRows: COLUMN_CHUNK_ROWS });
    if (dweight) this.addColumnSums(dweight, partial, C, chunks, 2 * C);
    if (dbias) this.addColumnSums(dbias, partial.view(C), C, chunks, 2 * C);
  }

  rmsnormForward(out: GpuTensor, rstd: GpuTensor, inp: GpuTensor, weight: GpuTensor, N: number, C: number, eps: number): void {
    requireLengths('rmsnormForward', { out: [out, N * C], rstd: [rstd, N], inp: [inp, N * C], weight: [weight, C] });
    this.runtime.dispatch(KERNELS.rmsnormForward, { out, rstd, inp, weight }, { N, C, eps }, { RT: this.rowThreads(C) });
  }

  rmsnormBackward(dinp: GpuTensor, dweight: GpuTensor | null, dout: GpuTensor, inp: GpuTensor, weight: GpuTensor,
    rstd: GpuTensor, N: number, C: number): void {
    requireLengths('rmsnormBackward', { dinp: [dinp, N * C], dweight: [dweight, C], dout: [dout, N * C], inp: [inp, N * C],
      weight: [weight, C], rstd: [rstd, N] });
    this.runtime.dispatch(KERNELS.rmsnormBackward, { dinp, dout, inp, weight, rstd }, { N, C }, { RT: this.rowThreads(C) });
    if (!dweight || N === 0) return;
    const chunks = Math.ceil(N / COLUMN_CHUNK_ROWS);
    const partial = this.runtime.scratch(chunks * C);
    this.runtime.dispatch(KERNELS.rmsnormParamGrads, { partial, dout, inp, rstd }, { N: C, rows: N, chunkRows: COLUMN_CHUNK_ROWS });
    this.addColumnSums(dweight, partial, C, chunks, C);
  }

  // ---------------------------------------------------------------- rotary position embedding
  ropeForward(out: GpuTensor, inp: GpuTensor, cos: GpuTensor, sin: GpuTensor, B: number, T: number, H: number,
    HD: number, pos0: number): void {
    this.rope(out, inp, cos, sin, B, T, H, HD, pos0, false, false);
  }

  ropeBackward(dinp: GpuTensor, dout: GpuTensor, cos: GpuTensor, sin: GpuTensor, B: number, T: number, H: number,
    HD: number, pos0: number, accumulate: boolean): void {
    this.rope(dinp, dout, cos, sin, B, T, H, HD, pos0, true, accumulate);
  }

  private rope(out: GpuTensor, inp: GpuTensor, cos: GpuTensor, sin: GpuTensor, B: number, T: number, H: number,
    HD: number, pos0: number, backward: boolean, accumulate: boolean): void {
    const elements = B * T * H * HD;
    const table = (pos0 + T) * (HD >> 1);
    requireLengths(backward ? 'ropeBackward' : 'ropeForward', { out: [out, elements], inp: [inp, elements], cos: [cos, table], sin: [sin, table] });
    const half = HD >> 1;
    this.runtime.dispatch(KERNELS.rope, { out, inp, cos, sin }, { N: B * T * H * half, T, H, half, pos0 },
      { BACKWARD: backward, ACCUMULATE: accumulate });
  }

  // ---------------------------------------------------------------- causal self-attention
  attentionForward(out: GpuTensor, lse: GpuTensor, q: GpuTensor, k: GpuTensor, v: GpuTensor, B: number, T: number,
    NH: number, NKV: number, HD: number, qStride: number, kvStride: number, hidden?: GpuTensor | null): void {
    requireEvenHeads('attentionForward', NH, NKV);
    requireLengths('attentionForward', { out: [out, B * T * NH * HD], lse: [lse, B * NH * T],
      q: [q, stridedExtent(B * T, qStride, NH * HD)], k: [k, stridedExtent(B * T, kvStride, NKV * HD)],
      v: [v, stridedExtent(B * T, kvStride, NKV * HD)], hidden: [hidden, 2 * B] });
    this.runtime.dispatch(KERNELS.attentionForward, { out, lse, q, k, v, hidden },
      { B, T, pos0: 0, NH, NKV, qStride, kvStride, scale: 1 / Math.sqrt(HD), hasLse: 1, hasHidden: Number(Boolean(hidden)) },
      { HD, TK: attentionTile(HD), DIRECT: this.attentionDirect(T) });
  }

  /** dq, dk, dv accumulated; three passes: per-row (lse, dout . out), then dq by queries, then dk/dv by keys */
  attentionBackward(dq: GpuTensor, dk: GpuTensor, dv: GpuTensor, dout: GpuTensor, q: GpuTensor, k: GpuTensor,
    v: GpuTensor, out: GpuTensor, lse: GpuTensor, B: number, T: number, NH: number, NKV: number, HD: number,
    qStride: number, kvStride: number, hidden?: GpuTensor | null): void {
    requireEvenHeads('attentionBackward', NH, NKV);
    const qExtent = stridedExtent(B * T, qStride, NH * HD);
    const kvExtent = stridedExtent(B * T, kvStride, NKV * HD);
    requireLengths('attentionBackward', { dq: [dq, qExtent], dk: [dk, kvExtent], dv: [dv, kvExtent],
      dout: [dout, B * T * NH * HD], q: [q, qExtent], k: [k, kvExtent], v: [v, kvExtent], out: [out, B * T * NH * HD],
      lse: [lse, B * NH * T], hidden: [hidden, 2 * B] });
    const rowsCount = B * NH * T;
    if (rowsCount === 0) return;
    const stats = this.runtime.scratch(2 * rowsCount);
    const consts = { HD, TK: attentionTile(HD), DIRECT: this.attentionDirect(T) };
    const scalars = { B, T, NH, NKV, qStride, kvStride, scale: 1 / Math.sqrt(HD), hasHidden: Number(Boolean(hidden)) };
    this.runtime.dispatch(KERNELS.attentionBackwardStats, { stats, lse, dout, out }, { N: rowsCount, T, NH }, { HD });
    this.runtime.dispatch(KERNELS.attentionBackwardQuery, { dq, dout, q, k, v, stats, hidden }, scalars, consts);
    this.runtime.dispatch(KERNELS.attentionBackwardKeyValue, { dk, dv, dout, q, k, v, stats, hidden }, scalars, consts);
  }

  attentionDecode(out: GpuTensor, q: GpuTensor, k: GpuTensor, v: GpuTensor, T: number, pos0: number, NH: number,
    NKV: number, HD: number, qStride: number, kvStride: number): void {
    requireEvenHeads('attentionDecode', NH, NKV);
    requireLengths('attentionDecode', { out: [out, T * NH * HD], q: [q, stridedExtent(T, qStride, NH * HD)],
      k: [k, stridedExtent(pos0 + T, kvStride, NKV * HD)], v: [v, stridedExtent(pos0 + T, kvStride, NKV * HD)] });
    this.runtime.dispatch(KERNELS.attentionForward, { out, q, k, v },
      { B: 1, T, pos0, NH, NKV, qStride, kvStride, scale: 1 / Math.sqrt(HD), hasLse: 0, hasHidden: 0 },
      { HD, TK: attentionTile(HD), DIRECT: this.attentionDirect(pos0 + T) });
  }

  // ---------------------------------------------------------------- pointwise
  swigluForward(out: GpuTensor, gate: GpuTensor, up: GpuTensor, N: number): void {
    requireLengths('swigluForward', { out: [out, N], gate: [gate, N], up: [up, N] });
    this.runtime.dispatch(KERNELS.swigluForward, { out, gate, up }, { N });
  }

  swigluBackward(dgate: GpuTensor, dup: GpuTensor, dout: GpuTensor, gate: GpuTensor, up: GpuTensor, N: number,
    accumulate: boolean): void {
    requireLengths('swigluBackward', { dgate: [dgate, N], dup: [dup, N], dout: [dout, N], gate: [gate, N], up: [up, N] });
    this.runtime.dispatch(KERNELS.swigluBackward, { dgate, dup, dout, gate, up }, { N }, { ACCUMULATE: accumulate });
  }

  geluForward(out: GpuTensor, inp: GpuTensor, N: number): void {
    requireLengths('geluForward', { out: [out, N], inp: [inp, N] });
    this.runtime.dispatch(KERNELS.geluForward, { out, inp }, { N });
  }

  geluBackward(dinp: GpuTensor, dout: GpuTensor, inp: GpuTensor, N: number, accumulate: boolean): void {
    requireLengths('geluBackward', { dinp: [dinp, N], dout: [dout, N], inp: [inp, N] });
    this.runtime.dispatch(KERNELS.geluBackward, { dinp, dout, inp }, { N }, { ACCUMULATE: accumulate });
  }

  add(out: GpuTensor, a: GpuTensor, b: GpuTensor, N: number): void {
    requireLengths('add', { out: [out, N], a: [a, N], b: [b, N] });
    this.runtime.dispatch(KERNELS.add, { out, a, b }, { N });
  }

  axpy(dst: GpuTensor, src: GpuTensor, scale: number, N: number): void {
    requireLengths('axpy', { dst: [dst, N], src: [src, N] });
    this.runtime.dispatch(KERNELS.axpy, { dst, src }, { N, alpha: scale });
  }

  // ---------------------------------------------------------------- loss head
  logprobForward(logp: GpuTensor, lse: GpuTensor, logits: GpuTensor, targets: GpuTensor, N: number, V: number): void {
    requireLengths('logprobForward', { logp: [logp, N], lse: [lse, N], logits: [logits, N * V], targets: [targets, N] });
    this.runtime.dispatch(KERNELS.logprobForward, { logp, lse, logits, targets }, { N, V }, { RT: this.rowThreads(V) });
  }

  logitsStats(mean: GpuTensor, argmax: GpuTensor, logits: GpuTensor, N: number, V: number): void {
    if (N > 0 && !(V >= 1)) throw new RangeError(`logitsStats: V must be at least 1, got ${V}`);
    requireLengths('logitsStats', { mean: [mean, N], argmax: [argmax, N], logits: [logits, N * V] });
    this.runtime.dispatch(KERNELS.logitsStats, { mean, argmax, logits }, { N, V }, { RT: this.rowThreads(V) });
  }

  logprobBackward(dlogits: GpuTensor, dlogp: GpuTensor, logits: GpuTensor, lse: GpuTensor, targets: GpuTensor,
    N: number, V: number): void {
    requireLengths('logprobBackward', { dlogits: [dlogits, N * V], dlogp: [dlogp, N], logits: [logits, N * V], lse: [lse, N], targets: [targets, N] });
    this.runtime.dispatch(KERNELS.logprobBackward, { dlogits, dlogp, logits, lse, targets }, { N: N * V, V });
  }

  // ---------------------------------------------------------------- optimizer
  adamwStep(params: GpuTensor, grads: GpuTensor, m: GpuTensor, v: GpuTensor, N: number, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, step: number): void {
    requireLengths('adamwStep', { params: [params, N], grads: [grads, N], m: [m, N], v: [v, N] });
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    this.runtime.dispatch(KERNELS.adamwStep, { params, grads, m, v },
      { N, beta1, beta2, eps, stepSize: lr / bc1, sqrtBc2: Math.sqrt(bc2), decay: 1 - lr * weightDecay });
  }

  /**
   * x (N) -> out[0] = sum of squares, written (float32 sums; the CPU backends sum in float64): levels of reduceSum,
   * each folding REDUCE_FOLD values per thread, until one value is left.
   */
  sumSquaresInto(out: GpuTensor, x: GpuTensor, N: number): void {
    requireLengths('sumSquaresInto', { out: [out, 1], x: [x, N] });
    if (N === 0) {
      this.runtime.zero(out.view(0, 1));
      return;
    }
    let src = x;
    let count = N;
    let square = true;
    for (;;) {
      const parts = Math.ceil(count / REDUCE_FOLD);
      const partial = parts === 1 ? out : this.runtime.scratch(parts);
      this.runtime.dispatch(KERNELS.reduceSum, { partial, x: src }, { N: parts, count }, { SQUARE: square });
      if (parts === 1) return;
      src = partial;
      count = parts;
      square = false;
    }
  }

  /** x (N) *= s in place */
  scale(x: GpuTensor, s: number, N: number): void {
    requireLengths('scale', { x: [x, N] });
    this.runtime.dispatch(KERNELS.scale, { x }, { N, factor: s });
  }

  // ---------------------------------------------------------------- data movement
  /** x (N) = 0 */
  zero(x: GpuTensor, N: number): void {
    requireLengths('zero', { x: [x, N] });
    this.runtime.zero(x.view(0, N));
  }

  /** inp (*,C), rows (M) -> out (M,C) written: the embedding lookup with the rows as ids */
  gatherRows(out: GpuTensor, inp: GpuTensor, rows: GpuTensor, M: number, C: number): void {
    this.embeddingForward(out, rows, inp, M, C, false);
  }

  /** dout (M,C), rows (M) -> dinp[rows[i]] += dout[i]: the embedding scatter-add (deterministic, repeated rows summed in order) */
  scatterAddRows(dinp: GpuTensor, dout: GpuTensor, rows: GpuTensor, M: number, C: number): void {
    this.embeddingBackward(dinp, dout, rows, M, C);
  }

  /** x (M,C), s (M) -> x[i] *= s[i] */
  scaleRows(x: GpuTensor, s: GpuTensor, M: number, C: number): void {
    requireLengths('scaleRows', { x: [x, M * C], s: [s, M] });
    if (M * C === 0) return;
    this.runtime.dispatch(KERNELS.scaleRows, { x, s }, { N: M * C, C });
  }

  /** src (n rows of width, srcStride apart) -> dst (n rows, dstStride apart) */
  copyRows(dst: GpuTensor, src: GpuTensor, n: number, width: number, dstStride: number, srcStride: number): void {
    requireLengths('copyRows', { dst: [dst, stridedExtent(n, dstStride, width)], src: [src, stridedExtent(n, srcStride, width)] });
    if (n * width === 0) return;
    this.runtime.dispatch(KERNELS.copyRows, { dst, src }, { N: n * width, width, dstStride, srcStride });
  }

  dropoutForward(out: GpuTensor, inp: GpuTensor, N: number, key: number, p: number): void {
    this.dropout(true, out, inp, N, key, p);
  }

  dropoutBackward(dinp: GpuTensor, dout: GpuTensor, N: number, key: number, p: number): void {
    this.dropout(false, dinp, dout, N, key, p);
  }

  private dropout(forward: boolean, out: GpuTensor, inp: GpuTensor, N: number, key: number, p: number): void {
    requireLengths(forward ? 'dropoutForward' : 'dropoutBackward', { out: [out, N], inp: [inp, N] });
    if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
    if (N === 0) return;
    // the reference keeps i when hash >= p 2^32 (a double); for an integer hash that is hash >= ceil(p 2^32)
    const threshold = Math.ceil(p * 4294967296);
    this.runtime.dispatch(KERNELS.dropout, { out, inp }, { N, key: key >>> 0, threshold, inv: 1 / (1 - p) }, { FORWARD: forward });
  }
}
