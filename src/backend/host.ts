// What the CPU backends share beyond arithmetic: their buffers are typed arrays (views are subarrays, an upload is
// a copy, a download is the array itself), and the data-movement kernels, which are memory copies or O(n) passes
// next to the matrix products around them, so one TypeScript implementation serves the reference and the native
// backend alike.
import { dropoutKeeps, type FloatArray, type ReferenceKernels } from './kernels.js';
import { embeddingBackward, embeddingForward } from './js/embedding.js';

type HostPart = Pick<ReferenceKernels, 'allocFloats' | 'allocInts' | 'free' | 'view' | 'viewInts' | 'lengthOf' | 'upload' | 'uploadInts'
  | 'download' | 'downloadInts' | 'zero' | 'scaleRows' | 'gatherRows' | 'scatterAddRows' | 'copyRows' | 'dropoutForward' | 'dropoutBackward'>;

function view<T extends FloatArray>(x: T, offset: number, length: number): T {
  return x.subarray(offset, offset + length) as T;
}

export const hostMemory: HostPart = {
  allocFloats: (n) => new Float32Array(n),
  allocInts: (n) => new Int32Array(n),
  free: () => { /* typed arrays are the garbage collector's */ },
  view,
  viewInts: (x, offset, length) => x.subarray(offset, offset + length),
  lengthOf: (x) => x.length,
  upload(dst, src): void {
    if (src.length !== dst.length) throw new RangeError(`upload: ${src.length} elements into a buffer of ${dst.length}`);
    dst.set(src);
  },
  uploadInts(dst, src): void {
    if (src.length !== dst.length) throw new RangeError(`uploadInts: ${src.length} elements into a buffer of ${dst.length}`);
    dst.set(src);
  },
  // float64 buffers exist only in finite-difference tests, which never download
  download: (src) => Promise.resolve(src as Float32Array),
  downloadInts: (src) => Promise.resolve(src),

  zero(x, N): void {
    x.fill(0, 0, N);
  },

  // a row gather is the embedding lookup with the rows as ids, a row scatter-add its backward (as on WebGPU)
  gatherRows: (out, inp, rows, M, C) => embeddingForward(out, rows, inp, M, C, false),
  scatterAddRows: (dinp, dout, rows, M, C) => embeddingBackward(dinp, dout, rows, M, C),

  scaleRows(x, s, M, C): void {
    for (let i = 0; i < M; i++) {
      const si = s[i]!;
      for (let c = i * C; c < i * C + C; c++) x[c] *= si;
    }
  },

  copyRows(dst, src, n, width, dstStride, srcStride): void {
    for (let i = 0; i < n; i++) dst.set(src.subarray(i * srcStride, i * srcStride + width), i * dstStride);
  },

  dropoutForward(out, inp, N, key, p): void {
    const threshold = p * 4294967296;
    const inv = 1 / (1 - p);
    for (let i = 0; i < N; i++) out[i] = dropoutKeeps(key, i, threshold) ? inp[i]! * inv : 0;
  },

  dropoutBackward(dinp, dout, N, key, p): void {
    const threshold = p * 4294967296;
    const inv = 1 / (1 - p);
    for (let i = 0; i < N; i++) if (dropoutKeeps(key, i, threshold)) dinp[i] += dout[i]! * inv;
  },
};

/** sumSquaresInto from a backend's synchronous sumSquares */
export function sumSquaresInto(sumSquares: (x: FloatArray, N: number) => number): ReferenceKernels['sumSquaresInto'] {
  return (out, x, N) => { out[0] = sumSquares(x, N); };
}
