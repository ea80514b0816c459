// The TypeScript reference backend: the executable specification every other backend is tested against.
import type { Kernels } from '../kernels.js';
import { gemm, matmulForward, matmulBackward, setMatmulBf16, getMatmulBf16 } from './matmul.js';
import { embeddingForward, embeddingBackward } from './embedding.js';
import { layernormForward, layernormBackward } from './layernorm.js';
import { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
import { ropeForward, ropeBackward } from './rope.js';
import { attentionForward, attentionBackward, attentionDecode } from './attention.js';
import { swigluForward, swigluBackward, geluForward, geluBackward, add, axpy } from './activations.js';
import { logprobForward, logprobBackward, logitsStats } from './logprob.js';
import { adamwStep, sumSquares, scale } from './optim.js';

export const jsKernels: Kernels = {
  name: 'js',
  setThreads(): void { /* single-threaded by design */ },
  getThreads: () => 1,
  setMatmulBf16, getMatmulBf16,
  gemm, matmulForward, matmulBackward,
  embeddingForward, embeddingBackward,
  layernormForward, layernormBackward, rmsnormForward, rmsnormBackward,
  ropeForward, ropeBackward,
  attentionForward, attentionBackward, attentionDecode,
  swigluForward, swigluBackward, geluForward, geluBackward, add, axpy,
  logprobForward, logprobBackward, logitsStats,
  adamwStep, sumSquares, scale,
};
