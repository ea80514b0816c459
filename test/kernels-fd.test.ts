// Every backward kernel of the TypeScript reference backend against central finite differences in float64
// (see test/helpers/fd.ts for the method and its tolerances), plus the non-differentiated kernels (gemm,
// AdamW, sumSquares, scale) against direct transcriptions of their definitions.
//
// Gradient buffers are pre-filled with random values, so each check also proves the accumulate (+=)
// contract of the interface; logprobBackward, which the interface says WRITES, is checked the other way, as is each
// kernel with an `accumulate` flag called without it (the pre-filled values must be gone).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { FloatArray } from '../src/backend/kernels.js';
import { referenceKernels as k } from '../src/backend/js/kernels.js';
import { Rng } from '../src/tensor/rng.js';
import {
  checkBackward, compareGradients, describeReport, numericGradient, randomNormal, randomUniform,
  type BackwardCase, type GradientReport,
} from './helpers/fd.js';

/** Runs the check and fails with the worst element of the first input whose gradient disagrees. */
function assertBackward(c: BackwardCase, seed: number, rtol?: number): GradientReport[] {
  const reports = checkBackward(c, new Rng(seed), rtol);
  for (const r of reports) assert.ok(r.ok, describeReport(r));
  return reports;
}

function assertClose(got: FloatArray, want: FloatArray, rtol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(err <= rtol * Math.max(1, Math.abs(want[i])), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

// ------------------------------------------------------------------ the checker itself can fail

test('checker: detects a wrong element, a missing accumulation and a wrong constant', () => {
  const rng = new Rng(1);
  const N = 16;
  const x = randomNormal(rng, N);
  const dx = new Float64Array(N);
  const out = new Float64Array(N);
  const gelu: BackwardCase = {
    name: 'gelu', inputs: [{ name: 'inp', x, dx }],
    forward: () => { k.geluForward(out, x, N); return out; },
    backward: (dout) => k.geluBackward(dx, dout, x, N, true),
  };
  assert.ok(checkBackward(gelu, new Rng(2)).every((r) => r.ok), 'the real gelu gradient passes');

  // one element off by 1e-5 relative (10x the tolerance)
  const oneOff = { ...gelu, backward: (dout: Float64Array) => { k.geluBackward(dx, dout, x, N, true); dx[5] += 1e-5 * dx[5]; } };
  // assignment where the interface says accumulate: the pre-filled values are lost
  const writes = { ...gelu, backward: (dout: Float64Array) => { dx.fill(0); k.geluBackward(dx, dout, x, N, true); } };
  // the tanh-approximation constant rounded to 0.0447 in backward only
  const wrongConstant = {
    ...gelu,
    backward: (dout: Float64Array) => {
      const c = Math.sqrt(2 / Math.PI);
      for (let i = 0; i < N; i++) {
        const v = x[i];
        const th = Math.tanh(c * (v + 0.0447 * v ** 3));
        dx[i] += dout[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * c * (1 + 3 * 0.0447 * v * v));
      }
    },
  };
  // a gradient that is NaN somewhere
  const nan = { ...gelu, backward: (dout: Float64Array) => { k.geluBackward(dx, dout, x, N, true); dx[3] = NaN; } };
  for (const [what, c] of [['one element off', oneOff], ['writes', writes], ['0.0447', wrongConstant], ['NaN', nan]] as const) {
    assert.equal(checkBackward(c, new Rng(2))[0].ok, false, `checker must reject: ${what}`);
  }
  // and a kernel that must WRITE is caught accumulating, as a case or for one input
  const writesCase = { ...gelu, writes: true };
  assert.equal(checkBackward(writesCase, new Rng(2))[0].ok, false, 'accumulating into a written output is caught');
  const writesInput = { ...gelu, inputs: [{ ...gelu.inputs[0]!, writes: true }] };
  assert.equal(checkBackward(writesInput, new Rng(2))[0].ok, false, 'accumulating into a written input is caught');
  const written = { ...gelu, writes: true, backward: (dout: Float64Array) => k.geluBackward(dx, dout, x, N, false) };
  assert.ok(checkBackward(written, new Rng(2))[0].ok, 'gelu without accumulate writes its gradient');
});

test('checker: numeric gradient of a known function', () => {
  // out = x^3 (elementwise), L = sum(w out): dL/dx = 3 w x^2
  const x = Float64Array.from([0.5, -2, 3, 1e3]);
  const out = new Float64Array(4);
  const w = Float64Array.from([1, -0.5, 2, 1e-3]);
  const numeric = numericGradient(x, () => { for (let i = 0; i < 4; i++) out[i] = x[i] ** 3; return out; }, w);
  const exact = x.map((v, i) => 3 * w[i] * v * v);
  assert.ok(compareGradients('x^3', exact, numeric).ok);
  assert.deepEqual(Array.from(x), [0.5, -2, 3, 1e3], 'inputs restored');
});

// ------------------------------------------------------------------ gemm and matmul

/** c (M,N) = op(a) @ op(b) by the definition, one dot product per element */
function naiveGemm(a: Float64Array, b: Float64Array, M: number, N: number, K: number, transA: boolean,
  transB: boolean): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += (transA ? a[p * M + i] : a[i * K + p]) * (transB ? b[j * K + p] : b[p * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

test('gemm: all four transpose combinations, written and accumulated, against a naive triple loop', () => {
  const rng = new Rng(10);
  const [M, N, K] = [3, 4, 5];
  for (const [transA, transB] of TRANSPOSES) {
    const a = randomNormal(rng, M * K);
    const b = randomNormal(rng, K * N);
    a[2] = 0; // the js gemm skips zero multipliers: make sure that path is exercised
    const want = naiveGemm(a, b, M, N, K, transA, transB);
    const c0 = randomNormal(rng, M * N);
    const written = Float64Array.from(c0);
    k.gemm(written, a, b, M, N, K, transA, transB, false);
    assertClose(written, want, 1e-13, `gemm transA=${transA} transB=${transB} written`);
    const accumulated = Float64Array.from(c0);
    k.gemm(accumulated, a, b, M, N, K, transA, transB, true);
    assertClose(accumulated, want.map((v, i) => v + c0[i]), 1e-13, `gemm transA=${transA} transB=${transB} accumulated`);
  }
});

test('gemm as the building block of backward: dA and dB by gemm match finite differences', () => {
  const [M, N, K] = [3, 4, 5];
  for (const [transA, transB] of TRANSPOSES) {
    const rng = new Rng(11);
    const a = randomNormal(rng, M * K);
    const b = randomNormal(rng, K * N);
    const da = new Float64Array(M * K);
    const db = new Float64Array(K * N);
    const c = new Float64Array(M * N);
    // C = op(A) op(B), W = dL/dC: d op(A) = W op(B)^T and d op(B) = op(A)^T W, each stored as A and B are
    assertBackward({
      name: `gemm transA=${transA} transB=${transB}`,
      inputs: [{ name: 'a', x: a, dx: da }, { name: 'b', x: b, dx: db }],
      forward: () => { k.gemm(c, a, b, M, N, K, transA, transB, false); return c; },
      backward: (w) => {
        if (transA) k.gemm(da, b, w, K, M, N, transB, true, true);
        else k.gemm(da, w, b, M, K, N, false, !transB, true);
        if (transB) k.gemm(db, w, a, N, K, M, true, transA, true);
        else k.gemm(db, a, w, K, N, M, !transA, false, true);
      },
    }, 12);
  }
});

/** accumulate: dinp's mode (dweight and dbias always accumulate) */
function matmulCase(rng: Rng, withBias: boolean, accumulate = true): BackwardCase & { parts: () => Float64Array[] } {
  const [N, C, OC] = [4, 5, 3];
  const inp = randomNormal(rng, N * C);
  const weight = randomNormal(rng, OC * C);
  const bias = withBias ? randomNormal(rng, OC) : null;
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(OC * C);
  const dbias = withBias ? new Float64Array(OC) : null;
  const out = new Float64Array(N * OC);
  const inputs = [{ name: 'inp', x: inp, dx: dinp, writes: !accumulate }, { name: 'weight', x: weight, dx: dweight, writes: false }];
  if (bias) inputs.push({ name: 'bias', x: bias, dx: dbias!, writes: false });
  return {
    name: `matmul ${withBias ? 'with' : 'without'} bias, dinp ${accumulate ? 'accumulated' : 'written'}`, inputs,
    forward: () => { k.matmulForward(out, inp, weight, bias, N, C, OC); return out; },
    backward: (dout) => k.matmulBackward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, accumulate),
    parts: () => [inp, weight, bias ?? new Float64Array(0), dinp, dweight, dbias ?? new Float64Array(0)],
  };
}

test('matmul: forward is gemm(inp, weight^T) + bias; backward matches finite differences, with and without bias', () => {
  for (const withBias of [true, false]) {
    const c = matmulCase(new Rng(20), withBias);
    const [inp, weight, bias] = c.parts();
    const [N, C, OC] = [4, 5, 3];
    const viaGemm = new Float64Array(N * OC);
    k.gemm(viaGemm, inp, weight, N, OC, C, false, true, false);
    for (let n = 0; n < N; n++) for (let o = 0; o < OC; o++) viaGemm[n * OC + o] += withBias ? bias[o] : 0;
    assertClose(c.forward(), viaGemm, 1e-13, 'matmulForward vs gemm');
    assertBackward(c, 21);
    // dinp written, dweight and dbias still accumulated
    assertBackward(matmulCase(new Rng(20), withBias, false), 23);
  }
});

test('matmul: null gradient outputs are skipped and the others are unchanged', () => {
  const [N, C, OC] = [4, 5, 3];
  const rng = new Rng(22);
  const inp = randomNormal(rng, N * C);
  const weight = randomNormal(rng, OC * C);
  const dout = randomNormal(rng, N * OC);
  const full = [new Float64Array(N * C), new Float64Array(OC * C), new Float64Array(OC)];
  k.matmulBackward(full[0], full[1], full[2], dout, inp, weight, N, C, OC, true);
  for (let mask = 0; mask < 8; mask++) {
    const bufs = full.map((f, i) => ((mask >> i) & 1 ? new Float64Array(f.length) : null));
    k.matmulBackward(bufs[0], bufs[1], bufs[2], dout, inp, weight, N, C, OC, true);
    bufs.forEach((buf, i) => { if (buf) assert.deepEqual(buf, full[i], `mask ${mask}, output ${i}`); });
  }
});

// ------------------------------------------------------------------ embedding

test('embedding: forward writes or adds rows; backward scatter-adds repeated ids (finite differences)', () => {
  const rng = new Rng(30);
  const [V, C] = [7, 5];
  const ids = Int32Array.from([3, 1, 3, 3, 0, 6, 1]); // 3 three times, 1 twice; 2, 4, 5 unused
  const N = ids.length;
  const table = randomNormal(rng, V * C);
  const dtable = new Float64Array(V * C);
  for (const accumulate of [false, true]) {
    const base = randomNormal(rng, N * C);
    const out = new Float64Array(N * C);
    const forward = (): Float64Array => { out.set(base); k.embeddingForward(out, ids, table, N, C, accumulate); return out; };
    forward();
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const want = table[ids[n] * C + c] + (accumulate ? base[n * C + c] : 0);
        assert.equal(out[n * C + c], want, `embeddingForward accumulate=${accumulate} [${n},${c}]`);
      }
    }
    assertBackward({
      name: `embedding accumulate=${accumulate}`, inputs: [{ name: 'table', x: table, dx: dtable }], forward,
      backward: (dout) => k.embeddingBackward(dtable, dout, ids, N, C),
    }, 31);
  }
});

// ------------------------------------------------------------------ normalisation

test('layernorm: backward matches finite differences for inp, weight and bias; null dweight/dbias', () => {
  const rng = new Rng(40);
  const [N, C, eps] = [3, 8, 1e-5];
  const inp = randomNormal(rng, N * C, 2);
  for (let c = 0; c < C; c++) inp[C + c] += 3; // a row with a large mean
  const weight = randomNormal(rng, C);
  const bias = randomNormal(rng, C);
  const [dinp, dweight, dbias] = [new Float64Array(N * C), new Float64Array(C), new Float64Array(C)];
  const [out, mean, rstd] = [new Float64Array(N * C), new Float64Array(N), new Float64Array(N)];
  const c: BackwardCase = {
    name: 'layernorm',
    inputs: [{ name: 'inp', x: inp, dx: dinp }, { name: 'weight', x: weight, dx: dweight }, { name: 'bias', x: bias, dx: dbias }],
    forward: () => { k.layernormForward(out, mean, rstd, inp, weight, bias, N, C, eps); return out; },
    backward: (dout) => k.layernormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C),
  };
  assertBackward(c, 41);
  // null weight/bias gradients (frozen parameters) leave dinp exactly as with them
  const dout = randomNormal(rng, N * C);
  c.forward();
  const withAll = new Float64Array(N * C);
  k.layernormBackward(withAll, new Float64Array(C), new Float64Array(C), dout, inp, weight, mean, rstd, N, C);
  const withNone = new Float64Array(N * C);
  k.layernormBackward(withNone, null, null, dout, inp, weight, mean, rstd, N, C);
  assert.deepEqual(withNone, withAll);
});

function rmsnormCase(rng: Rng, name: string, N: number, C: number): BackwardCase {
  const eps = 1e-6;
  const inp = randomNormal(rng, N * C);
  const weight = randomNormal(rng, C);
  const [dinp, dweight] = [new Float64Array(N * C), new Float64Array(C)];
  const [out, rstd] = [new Float64Array(N * C), new Float64Array(N)];
  return {
    name, inputs: [{ name: 'inp', x: inp, dx: dinp }, { name: 'weight', x: weight, dx: dweight }],
    forward: () => { k.rmsnormForward(out, rstd, inp, weight, N, C, eps); return out; },
    backward: (dout) => k.rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C),
  };
}

test('rmsnorm: backward matches finite differences, as a layer norm and as Qwen3 per-head q/k norm', () => {
  assertBackward(rmsnormCase(new Rng(50), 'rmsnorm (N=3, C=16)', 3, 16), 51);
  // Qwen3 q_norm: (B*T, NH*HD) seen as N = B*T*NH rows of C = HD, one weight (HD) shared by every head
  const [rows, heads, headDim] = [3, 4, 6];
  assertBackward(rmsnormCase(new Rng(52), 'rmsnorm per head', rows * heads, headDim), 53);
  // null dweight leaves dinp exactly as with it
  const rng = new Rng(54);
  const [N, C] = [4, 6];
  const inp = randomNormal(rng, N * C);
  const weight = randomNormal(rng, C);
  const dout = randomNormal(rng, N * C);
  const [out, rstd] = [new Float64Array(N * C), new Float64Array(N)];
  k.rmsnormForward(out, rstd, inp, weight, N, C, 1e-6);
  const [a, b] = [new Float64Array(N * C), new Float64Array(N * C)];
  k.rmsnormBackward(a, new Float64Array(C), dout, inp, weight, rstd, N, C);
  k.rmsnormBackward(b, null, dout, inp, weight, rstd, N, C);
  assert.deepEqual(b, a);
});

// ------------------------------------------------------------------ rotary position embedding

/** Hugging Face Llama tables: inv_freq_i = theta^(-2i/HD), cos/sin (P, HD/2) */
function ropeTables(P: number, HD: number, theta = 10000): { cos: Float64Array; sin: Float64Array } {
  const half = HD / 2;
  const cos = new Float64Array(P * half);
  const sin = new Float64Array(P * half);
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * theta ** (-2 * i / HD);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

test('rope: backward matches finite differences (pos0 = 0 and 5); forward may alias its input', () => {
  const [B, T, H, HD] = [2, 3, 2, 8];
  for (const pos0 of [0, 5]) {
    const rng = new Rng(60 + pos0);
    const { cos, sin } = ropeTables(pos0 + T, HD);
    const inp = randomNormal(rng, B * T * H * HD);
    const dinp = new Float64Array(inp.length);
    const out = new Float64Array(inp.length);
    const c: BackwardCase = {
      name: `rope pos0=${pos0}`, inputs: [{ name: 'inp', x: inp, dx: dinp }],
      forward: () => { k.ropeForward(out, inp, cos, sin, B, T, H, HD, pos0); return out; },
      backward: (dout) => k.ropeBackward(dinp, dout, cos, sin, B, T, H, HD, pos0, true),
    };
    assertBackward(c, 61);
    assertBackward({ ...c, name: `rope pos0=${pos0}, written`, writes: true,
      backward: (dout) => k.ropeBackward(dinp, dout, cos, sin, B, T, H, HD, pos0, false) }, 62);
    // the rotation itself at one element: token t=2 of batch 1, head 1, pair i=1
    const half = HD / 2;
    const o = ((1 * T + 2) * H + 1) * HD;
    const [cs, sn] = [cos[(pos0 + 2) * half + 1], sin[(pos0 + 2) * half + 1]];
    assert.ok(Math.abs(out[o + 1] - (inp[o + 1] * cs - inp[o + 1 + half] * sn)) < 1e-15);
    assert.ok(Math.abs(out[o + 1 + half] - (inp[o + 1 + half] * cs + inp[o + 1] * sn)) < 1e-15);
    const inPlace = Float64Array.from(inp);
    k.ropeForward(inPlace, inPlace, cos, sin, B, T, H, HD, pos0);
    assert.deepEqual(inPlace, out, 'ropeForward with out === inp');
  }
});

// ------------------------------------------------------------------ attention

interface AttentionDims { B: number; T: number; NH: number; NKV: number; HD: number }

/** q, k, v laid out in their buffers: separate contiguous tensors, or one fused row per token (GPT-2's c_attn) */
interface AttentionLayout {
  buffers: { name: string; x: Float64Array; dx: Float64Array }[];
  q: Float64Array; k: Float64Array; v: Float64Array;
  dq: Float64Array; dk: Float64Array; dv: Float64Array;
  qStride: number; kvStride: number;
}

function separateLayout(rng: Rng, d: AttentionDims): AttentionLayout {
  const [C, KVC, BT] = [d.NH * d.HD, d.NKV * d.HD, d.B * d.T];
  const [q, kk, v] = [randomNormal(rng, BT * C), randomNormal(rng, BT * KVC), randomNormal(rng, BT * KVC)];
  const [dq, dk, dv] = [new Float64Array(BT * C), new Float64Array(BT * KVC), new Float64Array(BT * KVC)];
  return {
    buffers: [{ name: 'q', x: q, dx: dq }, { name: 'k', x: kk, dx: dk }, { name: 'v', x: v, dx: dv }],
    q, k: kk, v, dq, dk, dv, qStride: C, kvStride: KVC,
  };
}

/** rows of [q | k | v | pad] per token; q/k/v are subarray views, every stride is the row width */
function fusedLayout(rng: Rng, d: AttentionDims, pad: number): AttentionLayout {
  const [C, KVC, BT] = [d.NH * d.HD, d.NKV * d.HD, d.B * d.T];
  const width = C + 2 * KVC + pad;
  const qkv = randomNormal(rng, BT * width);
  const dqkv = new Float64Array(BT * width);
  return {
    buffers: [{ name: 'qkv', x: qkv, dx: dqkv }],
    q: qkv, k: qkv.subarray(C), v: qkv.subarray(C + KVC),
    dq: dqkv, dk: dqkv.subarray(C), dv: dqkv.subarray(C + KVC),
    qStride: width, kvStride: width,
  };
}

function attentionCase(name: string, d: AttentionDims, L: AttentionLayout,
  hidden: Int32Array | null = null): BackwardCase & { lse: Float64Array } {
  const { B, T, NH, NKV, HD } = d;
  const out = new Float64Array(B * T * NH * HD);
  const lse = new Float64Array(B * NH * T);
  return {
    name, lse, inputs: L.buffers,
    forward: () => {
      k.attentionForward(out, lse, L.q, L.k, L.v, B, T, NH, NKV, HD, L.qStride, L.kvStride, hidden);
      return out;
    },
    backward: (dout) => k.attentionBackward(L.dq, L.dk, L.dv, dout, L.q, L.k, L.v, out, lse,
      B, T, NH, NKV, HD, L.qStride, L.kvStride, hidden),
  };
}

/**
 * causal softmax attention by its definition: the full score matrix, exp, normalise; with `hidden`, query t of
 * row b sees key s only when s <= t and not (t >= hi and lo <= s < hi)
 */
function naiveAttention(d: AttentionDims, L: AttentionLayout, hidden: Int32Array | null = null): { out: Float64Array; lse: Float64Array } {
  const { B, T, NH, NKV, HD } = d;
  const out = new Float64Array(B * T * NH * HD);
  const lse = new Float64Array(B * NH * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h * NKV / NH);
      for (let t = 0; t < T; t++) {
        const visible = (s: number): boolean => s <= t && !(hidden && t >= hidden[2 * b + 1] && s >= hidden[2 * b] && s < hidden[2 * b + 1]);
        const scores: number[] = [];
        for (let s = 0; s < T; s++) {
          let dot = 0;
          for (let i = 0; i < HD; i++) dot += L.q[(b * T + t) * L.qStride + h * HD + i] * L.k[(b * T + s) * L.kvStride + kvh * HD + i];
          scores.push(visible(s) ? dot / Math.sqrt(HD) : -Infinity);
        }
        const z = scores.reduce((acc, x) => acc + Math.exp(x), 0);
        lse[(b * NH + h) * T + t] = Math.log(z);
        for (let i = 0; i < HD; i++) {
          let o = 0;
          for (let s = 0; s < T; s++) o += (Math.exp(scores[s]) / z) * L.v[(b * T + s) * L.kvStride + kvh * HD + i];
          out[((b * T + t) * NH + h) * HD + i] = o;
        }
      }
    }
  }
  return { out, lse };
}

test('attention: forward matches the definition and backward matches finite differences (NKV = 4, 2, 1)', () => {
  for (const NKV of [4, 2, 1]) {
    const d: AttentionDims = { B: 2, T: 5, NH: 4, NKV, HD: 6 };
    const L = separateLayout(new Rng(70 + NKV), d);
    const c = attentionCase(`attention NKV=${NKV}`, d, L);
    const want = naiveAttention(d, L);
    assertClose(c.forward(), want.out, 1e-12, `attentionForward NKV=${NKV} out`);
    assertClose(c.lse, want.lse, 1e-12, `attentionForward NKV=${NKV} lse`);
    assertBackward(c, 71);
  }
});

test('attention with hidden keys (a shared prefix and two continuations in one row): definition and finite differences', () => {
  // row 0: prefix [0,3), first continuation [3,5), second [5,8); row 1: no prefix, [0,4) then [4,8); row 2: none
  const d: AttentionDims = { B: 3, T: 8, NH: 4, NKV: 2, HD: 6 };
  const hidden = Int32Array.from([3, 5, 0, 4, 0, 0]);
  const L = separateLayout(new Rng(75), d);
  const c = attentionCase('attention hidden keys', d, L, hidden);
  const want = naiveAttention(d, L, hidden);
  assertClose(c.forward(), want.out, 1e-12, 'attentionForward hidden out');
  assertClose(c.lse, want.lse, 1e-12, 'attentionForward hidden lse');
  // the second continuation of row 0 sees exactly what a row [prefix | second] would: compare with that row alone
  const alone: AttentionDims = { B: 1, T: 6, NH: 4, NKV: 2, HD: 6 };
  const pick = (x: Float64Array, w: number): Float64Array => Float64Array.from([0, 1, 2, 5, 6, 7].flatMap((t) => [...x.subarray(t * w, t * w + w)]));
  const La: AttentionLayout = { ...L, q: pick(L.q, L.qStride), k: pick(L.k, L.kvStride), v: pick(L.v, L.kvStride) };
  const wantAlone = naiveAttention(alone, La);
  const C = d.NH * d.HD;
  for (const [ta, t] of [[3, 5], [4, 6], [5, 7]]) {
    assertClose(c.forward().subarray(t * C, t * C + C), wantAlone.out.subarray(ta * C, ta * C + C), 1e-12, `second continuation t=${t}`);
  }
  assertBackward(c, 76);
});

test('attentionDecode: a cache of pos0 keys plus T new ones gives the rows pos0.. of full causal attention', () => {
  const d: AttentionDims = { B: 1, T: 9, NH: 4, NKV: 2, HD: 6 };
  const L = separateLayout(new Rng(77), d);
  const full = naiveAttention(d, L).out;
  const C = d.NH * d.HD;
  for (const pos0 of [0, 1, 5, 8]) {
    const T = d.T - pos0;
    const out = new Float64Array(T * C);
    k.attentionDecode(out, L.q.subarray(pos0 * C), L.k, L.v, T, pos0, d.NH, d.NKV, d.HD, C, d.NKV * d.HD);
    assertClose(out, full.subarray(pos0 * C), 1e-12, `attentionDecode pos0=${pos0}`);
  }
});

test('attention: strided views into a fused qkv buffer (GPT-2 qStride = 3C; GQA rows with padding untouched)', () => {
  // GPT-2: q = qkv, k = qkv.subarray(C), v = qkv.subarray(2C), all rows 3C apart
  const gpt2: AttentionDims = { B: 2, T: 5, NH: 4, NKV: 4, HD: 6 };
  const L = fusedLayout(new Rng(80), gpt2, 0);
  assert.equal(L.qStride, 3 * gpt2.NH * gpt2.HD);
  const c = attentionCase('attention fused qkv (3C)', gpt2, L);
  assertClose(c.forward(), naiveAttention(gpt2, L).out, 1e-12, 'attentionForward fused');
  assertBackward(c, 81);
  // grouped-query heads in one fused row with 3 padding columns: the padding's gradient must stay as it was
  // (the finite difference there is exactly 0, so any write into it fails the check)
  const gqa: AttentionDims = { B: 2, T: 5, NH: 4, NKV: 2, HD: 6 };
  assertBackward(attentionCase('attention fused GQA, padded rows', gqa, fusedLayout(new Rng(82), gqa, 3)), 83);
});

// ------------------------------------------------------------------ pointwise

test('swiglu: backward matches finite differences, including saturated gates', () => {
  const rng = new Rng(90);
  const N = 24;
  const gate = randomNormal(rng, N, 2);
  gate.set([-30, -8, 8, 30, 0], 0); // sigmoid saturated both ways, and exactly 0
  const up = randomNormal(rng, N);
  const [dgate, dup, out] = [new Float64Array(N), new Float64Array(N), new Float64Array(N)];
  for (const accumulate of [true, false]) {
    assertBackward({
      name: `swiglu, ${accumulate ? 'accumulated' : 'written'}`,
      inputs: [{ name: 'gate', x: gate, dx: dgate }, { name: 'up', x: up, dx: dup }], writes: !accumulate,
      forward: () => { k.swigluForward(out, gate, up, N); return out; },
      backward: (dout) => k.swigluBackward(dgate, dup, dout, gate, up, N, accumulate),
    }, 91);
  }
  // silu(-1000) must be -0-ish, not NaN (exp overflow)
  k.swigluForward(out, Float64Array.from([-1000, 1000]), Float64Array.from([1, 1]), 2);
  assert.ok(Math.abs(out[0]) < 1e-300 && out[1] === 1000, `silu(±1000) = ${out[0]}, ${out[1]}`);
});

test('gelu (tanh approximation): forward matches the formula; backward matches finite differences', () => {
  const rng = new Rng(100);
  const N = 24;
  const inp = randomNormal(rng, N, 2);
  inp.set([-6, 6, 0], 0);
  const [dinp, out] = [new Float64Array(N), new Float64Array(N)];
  k.geluForward(out, inp, N);
  // torch: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
  assertClose(out, inp.map((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))), 1e-15, 'gelu');
  for (const accumulate of [true, false]) {
    assertBackward({
      name: `gelu, ${accumulate ? 'accumulated' : 'written'}`, inputs: [{ name: 'inp', x: inp, dx: dinp }], writes: !accumulate,
      forward: () => { k.geluForward(out, inp, N); return out; },
      backward: (dout) => k.geluBackward(dinp, dout, inp, N, accumulate),
    }, 101);
  }
});

test('add and axpy: the residual and its backward match finite differences; add may alias', () => {
  const rng = new Rng(110);
  const N = 12;
  const [a, b, da, db, out] = [randomNormal(rng, N), randomNormal(rng, N), new Float64Array(N), new Float64Array(N), new Float64Array(N)];
  // the residual's backward is axpy with scale 1 into each branch
  assertBackward({
    name: 'add', inputs: [{ name: 'a', x: a, dx: da }, { name: 'b', x: b, dx: db }],
    forward: () => { k.add(out, a, b, N); return out; },
    backward: (dout) => { k.axpy(da, dout, 1, N); k.axpy(db, dout, 1, N); },
  }, 111);
  const sum = a.map((v, i) => v + b[i]);
  const aliasA = Float64Array.from(a);
  k.add(aliasA, aliasA, b, N);
  assert.deepEqual(aliasA, sum, 'add with out === a');
  const aliasB = Float64Array.from(b);
  k.add(aliasB, a, aliasB, N);
  assert.deepEqual(aliasB, sum, 'add with out === b');
  // axpy as a function of (dst, src): out = dst + s src, so dL/dsrc = s w, dL/ddst = w
  const s = -0.37;
  const [dst, src, ddst, dsrc, res] = [randomNormal(rng, N), randomNormal(rng, N), new Float64Array(N), new Float64Array(N), new Float64Array(N)];
  assertBackward({
    name: 'axpy', inputs: [{ name: 'dst', x: dst, dx: ddst }, { name: 'src', x: src, dx: dsrc }],
    forward: () => { res.set(dst); k.axpy(res, src, s, N); return res; },
    backward: (dout) => { k.axpy(ddst, dout, 1, N); k.axpy(dsrc, dout, s, N); },
  }, 112);
});

// ------------------------------------------------------------------ loss head

test('logprob: forward matches log_softmax; backward WRITES, matches finite differences, zeroes rows without target', () => {
  const rng = new Rng(120);
  const [N, V] = [5, 7];
  const targets = Int32Array.from([2, -1, 0, 6, -1]);
  const logits = randomNormal(rng, N * V, 2);
  const [logp, lse, dlogits] = [new Float64Array(N), new Float64Array(N), new Float64Array(N * V)];
  const c: BackwardCase = {
    name: 'logprob', writes: true, inputs: [{ name: 'logits', x: logits, dx: dlogits }],
    forward: () => { k.logprobForward(logp, lse, logits, targets, N, V); return logp; },
    backward: (dlogp) => k.logprobBackward(dlogits, dlogp, logits, lse, targets, N, V),
  };
  c.forward();
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) { assert.equal(logp[n], 0, `row ${n} without target`); continue; }
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(logits[n * V + j]);
    assert.ok(Math.abs(logp[n] - (logits[n * V + targets[n]] - Math.log(z))) < 1e-13, `logp[${n}]`);
    assert.ok(Math.abs(lse[n] - Math.log(z)) < 1e-13, `lse[${n}]`);
  }
  assertBackward(c, 121); // pre-filled dlogits: rows without target must come back exactly 0
  for (const n of [1, 4]) for (let j = 0; j < V; j++) assert.equal(dlogits[n * V + j], 0);

  // dlogits may alias logits (the loss head overwrites the logits buffer with its gradient)
  const dlogp = randomNormal(rng, N);
  c.forward();
  const separate = new Float64Array(N * V);
  k.logprobBackward(separate, dlogp, logits, lse, targets, N, V);
  const aliased = Float64Array.from(logits);
  k.logprobBackward(aliased, dlogp, aliased, lse, targets, N, V);
  assert.deepEqual(aliased, separate, 'logprobBackward with dlogits === logits');

  // rows subtract their max: logits shifted by +1000 give the same log-probabilities and gradient
  const shifted = logits.map((x) => x + 1000);
  const [logp2, lse2, dshifted] = [new Float64Array(N), new Float64Array(N), new Float64Array(N * V)];
  k.logprobForward(logp2, lse2, shifted, targets, N, V);
  assertClose(logp2, logp, 1e-11, 'logp of logits + 1000');
  k.logprobBackward(dshifted, dlogp, shifted, lse2, targets, N, V);
  assertClose(dshifted, separate, 1e-10, 'dlogits of logits + 1000');
});

// ------------------------------------------------------------------ optimizer

/**
 * torch.optim.AdamW (_single_tensor_adamw, foreach=False, amsgrad=False, maximize=False) line by line:
 *   param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   step_size = lr / (1 - beta1 ** step)
 *   denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2 ** step)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 */
function torchAdamW(p: number[], g: number[], m: number[], v: number[], lr: number, beta1: number, beta2: number,
  eps: number, wd: number, step: number): void {
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd;
    m[i] += (g[i] - m[i]) * (1 - beta1);
    v[i] = v[i] * beta2 + (1 - beta2) * g[i] * g[i];
    const stepSize = lr / (1 - beta1 ** step);
    const denom = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** step) + eps;
    p[i] += -stepSize * (m[i] / denom);
  }
}

test('adamwStep: three steps equal torch.optim.AdamW (decoupled weight decay, bias correction)', () => {
  const rng = new Rng(130);
  const N = 10;
  const [lr, beta1, beta2, eps, wd] = [1e-2, 0.9, 0.999, 1e-8, 0.1];
  const params = randomNormal(rng, N);
  params[0] = 0; // a zero weight with zero gradients stays 0 (no NaN from 0/0 in the update)
  const [m, v] = [new Float64Array(N), new Float64Array(N)];
  const ref = { p: Array.from(params), m: new Array<number>(N).fill(0), v: new Array<number>(N).fill(0) };
  for (let step = 1; step <= 3; step++) {
    const grads = randomNormal(rng, N, 0.1 * step);
    grads[0] = 0;
    k.adamwStep(params, grads, m, v, N, lr, beta1, beta2, eps, wd, step);
    torchAdamW(ref.p, Array.from(grads), ref.m, ref.v, lr, beta1, beta2, eps, wd, step);
    assertClose(params, Float64Array.from(ref.p), 1e-14, `params after step ${step}`);
    assertClose(m, Float64Array.from(ref.m), 1e-14, `exp_avg after step ${step}`);
    assertClose(v, Float64Array.from(ref.v), 1e-14, `exp_avg_sq after step ${step}`);
  }
  assert.equal(params[0], 0);
  // step 1 moves every parameter with a nonzero gradient by about lr (Adam's normalised first step)
  const p0 = randomNormal(rng, N);
  const p1 = Float64Array.from(p0);
  const g1 = randomNormal(rng, N);
  k.adamwStep(p1, g1, new Float64Array(N), new Float64Array(N), N, lr, beta1, beta2, 0, 0, 1);
  for (let i = 0; i < N; i++) assert.ok(Math.abs(p0[i] - p1[i] - lr * Math.sign(g1[i])) < 1e-12, `first step [${i}]`);
});

test('sumSquares accumulates in float64; scale multiplies in place', () => {
  // float32 inputs, float64 sum: 4096^2 + 1^2 = 2^24 + 1 is exact in float64 but rounds to 2^24 in float32
  const x = Float32Array.from([4096, 1, -3, 0.5]);
  assert.equal(k.sumSquares(x, 4), 4096 ** 2 + 1 + 9 + 0.25);
  assert.equal(k.sumSquares(x, 2), 2 ** 24 + 1, 'only the first N elements');
  const rng = new Rng(140);
  const y = randomNormal(rng, 50);
  assert.ok(Math.abs(k.sumSquares(y, 50) - y.reduce((s, v) => s + v * v, 0)) < 1e-12);
  const z = Float64Array.from(y);
  k.scale(z, -0.25, 40);
  for (let i = 0; i < 50; i++) assert.equal(z[i], i < 40 ? -0.25 * y[i] : y[i], `scale [${i}]`);
});
