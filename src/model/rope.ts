// Rotary embedding tables: inverse frequencies (with Llama 3's rope_scaling when configured) and the cos/sin
// tables (positions, HD/2) the rope kernels read.
import type { ModelConfig, RopeScaling } from './types.js';

/** inv_freq[i] = theta^(-2i/HD), then Llama 3's frequency-dependent rescaling when configured */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  if (!scaling) return inv;
  // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated smoothly.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
  const lowFreqWavelen = old / lowFreqFactor;
  const highFreqWavelen = old / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      inv[i] /= factor;
    } else {
      const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
    }
  }
  return inv;
}

export interface RopeTables {
  positions: number;
  cos: Float32Array;
  sin: Float32Array;
}

/** cos/sin (positions, HD/2), angles computed in float64 */
export function ropeTables(config: ModelConfig, positions: number): RopeTables {
  const inv = ropeInverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
  const half = inv.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * inv[i];
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { positions, cos, sin };
}
