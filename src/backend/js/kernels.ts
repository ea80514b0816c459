// The TypeScript reference backend: the executable specification every other backend is tested against.
import type { Kernels, ReferenceKernels } from '../kernels.js';
import { gemm, matmulForward, matmulBackward, setMatmulBf16, getMatmulBf16 } from './matmul.js';
import { embeddingForward, embeddingBackward } from './embedding.js';
import { matmulForwardBf16, matmulBackwardBf16, embeddingForwardBf16 } from './bf16-weights.js';
import { layernormForward, layernormBackward } from './layernorm.js';
import { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
import { ropeForward, ropeBackward } from './rope.js';
import { attentionForward, attentionBackward, attentionDecode } from './attention.js';
import { swigluForward, swigluBackward, geluForward, geluBackward, add, axpy } from './activations.js';
import { logprobForward, logprobBackward, logitsStats } from './logprob.js';
import { adamwStep, sumSquares, scale } from './optim.js';
import { hostMemory, sumSquaresInto } from '../host.js';

/** typed for all it accepts, Float64Array included (finite-difference tests) */
export const referenceKernels: ReferenceKernels = {
  name: 'js',
  ...hostMemory,
  setThreads(): void { /* single-threaded by design */ },
  getThreads: () => 1,
  setMatmulBf16, getMatmulBf16,
  gemm, matmulForward, matmulBackward,
  matmulForwardBf16, matmulBackwardBf16, embeddingForwardBf16,
  embeddingForward, embeddingBackward,
  layernormForward, layernormBackward, rmsnormForward, rmsnormBackward,
  ropeForward, ropeBackward,
  attentionForward, attentionBackward, attentionDecode,
  swigluForward, swigluBackward, geluForward, geluBackward, add, axpy,
  logprobForward, logprobBackward, logitsStats,
  adamwStep, sumSquares, scale, sumSquaresInto: sumSquaresInto(sumSquares),
};

/** the same kernels, typed as every CPU backend (float32 buffers) */
export const jsKernels: Kernels = referenceKernels;
