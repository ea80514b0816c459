// Causal self-attention with grouped-query heads, one score row at a time (the flash-attention idea in its
// simplest form): forward saves only the log-sum-exp of each row; backward recomputes the probabilities.
// q (B,T,NH,HD) rows qStride apart, k/v (B,T,NKV,HD) rows kvStride apart, hidden (B,2) or null
//   -> out (B,T,NH,HD), lse (B,NH,T)
//
// `hidden` lets two sequences that share a prefix run as one row (prompt | chosen | rejected): in row b, keys
// [hidden[2b], hidden[2b+1]) are invisible to queries at t >= hidden[2b+1], so the second continuation attends
// to the shared prefix and itself but not to the first continuation.
import type { FloatArray } from '../kernels.js';

/** the keys [lo, hi) query t of row b may not see beyond the causal limit (an empty range when none) */
export function hiddenKeys(hidden: Int32Array | null | undefined, b: number, t: number): [number, number] {
  if (!hidden) return [0, 0];
  const lo = hidden[2 * b];
  const hi = hidden[2 * b + 1];
  return t >= hi ? [lo, hi] : [0, 0];
}

/**
 * The forward for queries that are the last T of each row's L = pos0 + T keys: pos0 = 0 is training's
 * self-attention, pos0 > 0 a generation step over a key/value cache (as the native kernel). lse may be null.
 */
function forwardAt(out: FloatArray, lse: FloatArray | null, q: FloatArray, k: FloatArray, v: FloatArray, B: number,
  T: number, pos0: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
  hidden: Int32Array | null): void {
  const L = pos0 + T;
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const scores = new Float64Array(L);
  const acc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const last = pos0 + t;
        const [lo, hi] = hiddenKeys(hidden, b, last);
        const qo = (b * T + t) * qStride + h * HD;
        let max = -Infinity;
        for (let s = 0; s <= last; s++) {
          if (s >= lo && s < hi) continue;
          const ko = (b * L + s) * kvStride + kvh * HD;
          let dot = 0;
          for (let i = 0; i < HD; i++) dot += q[qo + i] * k[ko + i];
          dot *= scale;
          scores[s] = dot;
          if (dot > max) max = dot;
        }
        let sum = 0;
        acc.fill(0);
        for (let s = 0; s <= last; s++) {
          if (s >= lo && s < hi) continue;
          const p = Math.exp(scores[s] - max);
          sum += p;
          const vo = (b * L + s) * kvStride + kvh * HD;
          for (let i = 0; i < HD; i++) acc[i] += p * v[vo + i];
        }
        const oo = ((b * T + t) * NH + h) * HD;
        for (let i = 0; i < HD; i++) out[oo + i] = acc[i] / sum;
        if (lse) lse[(b * NH + h) * T + t] = max + Math.log(sum);
      }
    }
  }
}

export function attentionForward(out: FloatArray, lse: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray,
  B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
  hidden: Int32Array | null = null): void {
  forwardAt(out, lse, q, k, v, B, T, 0, NH, NKV, HD, qStride, kvStride, hidden);
}

// dout (B,T,NH,HD), q, k, v, out, lse, hidden -> dq, dk, dv accumulated
export function attentionBackward(dq: FloatArray, dk: FloatArray, dv: FloatArray, dout: FloatArray,
  q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
  B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
  hidden: Int32Array | null = null): void {
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const [lo, hi] = hiddenKeys(hidden, b, t);
        const qo = (b * T + t) * qStride + h * HD;
        const oo = ((b * T + t) * NH + h) * HD;
        const l = lse[(b * NH + h) * T + t];
        // D = sum_s p_s (dout . v_s) = dout . out
        let D = 0;
        for (let i = 0; i < HD; i++) D += dout[oo + i] * out[oo + i];
        for (let s = 0; s <= t; s++) {
          if (s >= lo && s < hi) continue;
          const ko = (b * T + s) * kvStride + kvh * HD;
          let dot = 0;
          for (let i = 0; i < HD; i++) dot += q[qo + i] * k[ko + i];
          const p = Math.exp(dot * scale - l);
          let dp = 0;
          for (let i = 0; i < HD; i++) dp += dout[oo + i] * v[ko + i];
          const ds = p * (dp - D) * scale;
          for (let i = 0; i < HD; i++) {
            dq[qo + i] += ds * k[ko + i];
            dk[ko + i] += ds * q[qo + i];
            dv[ko + i] += p * dout[oo + i];
          }
        }
      }
    }
  }
}

/**
 * Generation over a key/value cache: T new queries at positions pos0..pos0+T-1 attend causally to cached keys and
 * values 0..pos0+T-1. q (T,NH,HD) rows qStride apart, k/v (pos0+T,NKV,HD) rows kvStride apart -> out (T,NH,HD).
 * Forward only (nothing is saved: no backward follows a generation step).
 */
export function attentionDecode(out: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, T: number, pos0: number,
  NH: number, NKV: number, HD: number, qStride: number, kvStride: number): void {
  forwardAt(out, null, q, k, v, 1, T, pos0, NH, NKV, HD, qStride, kvStride, null);
}
