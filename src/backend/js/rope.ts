// Rotary position embedding, rotate-half convention (Hugging Face Llama):
// inp (B,T,H,HD), cos/sin (P,HD/2) -> out (B,T,H,HD); the token at time t has position pos0 + t.
import type { FloatArray } from '../kernels.js';

export function ropeForward(out: FloatArray, inp: FloatArray, cos: FloatArray, sin: FloatArray,
  B: number, T: number, H: number, HD: number, pos0: number): void {
  const half = HD >> 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const co = (pos0 + t) * half;
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * HD;
        for (let i = 0; i < half; i++) {
          const x1 = inp[o + i];
          const x2 = inp[o + i + half];
          const c = cos[co + i];
          const s = sin[co + i];
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

// dout (B,T,H,HD) -> dinp accumulated, or written when not `accumulate`: the rotation's transpose
export function ropeBackward(dinp: FloatArray, dout: FloatArray, cos: FloatArray, sin: FloatArray,
  B: number, T: number, H: number, HD: number, pos0: number, accumulate: boolean): void {
  if (!accumulate) dinp.fill(0, 0, B * T * H * HD);
  const half = HD >> 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const co = (pos0 + t) * half;
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * HD;
        for (let i = 0; i < half; i++) {
          const d1 = dout[o + i];
          const d2 = dout[o + i + half];
          const c = cos[co + i];
          const s = sin[co + i];
          dinp[o + i] += d1 * c + d2 * s;
          dinp[o + i + half] += d2 * c - d1 * s;
        }
      }
    }
  }
}
