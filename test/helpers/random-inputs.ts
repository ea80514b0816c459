// Seeded random kernel inputs for the parity tests (native and WebGPU against the TypeScript reference), so that a
// failure reproduces: mulberry32, a small generator whose stream depends only on the seed.

export interface RandomInputs {
  /** uniform in [0, 1) */
  random(): number;
  /** n values uniform in [-scale, scale) */
  randn(n: number, scale?: number): Float32Array;
  /** n integers in [lo, hi) */
  randInts(n: number, lo: number, hi: number): Int32Array;
}

export function randomInputs(seed: number): RandomInputs {
  let s = seed >>> 0;
  const random = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    random,
    randn(n, scale = 1) {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * scale;
      return a;
    },
    randInts(n, lo, hi) {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = lo + Math.floor(random() * (hi - lo));
      return a;
    },
  };
}
