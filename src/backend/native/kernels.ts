// The native backend: the Kernels interface over the C++ addon. The addon's functions already take the
// interface's arguments in the interface's order, so this is a thin typed wrapper with a name.
import type { Kernels } from '../kernels.js';
import type { NativeAddon } from './addon.js';
import { hostMemory, sumSquaresInto } from '../host.js';

export function createNativeKernels(addon: NativeAddon): Kernels {
  return {
    name: 'native',
    // typed-array memory and the data-movement kernels (copies and O(n) passes) are the TypeScript backend's
    ...hostMemory,
    setThreads: (n) => addon.setThreads(n),
    getThreads: () => addon.getThreads(),
    setMatmulBf16: (on) => addon.setMatmulBf16(on),
    getMatmulBf16: () => addon.getMatmulBf16(),
    gemm: addon.gemm,
    matmulForward: addon.matmulForward,
    matmulBackward: addon.matmulBackward,
    embeddingForward: addon.embeddingForward,
    embeddingBackward: addon.embeddingBackward,
    layernormForward: addon.layernormForward,
    layernormBackward: addon.layernormBackward,
    rmsnormForward: addon.rmsnormForward,
    rmsnormBackward: addon.rmsnormBackward,
    ropeForward: addon.ropeForward,
    ropeBackward: addon.ropeBackward,
    attentionForward: addon.attentionForward,
    attentionBackward: addon.attentionBackward,
    attentionDecode: addon.attentionDecode,
    swigluForward: addon.swigluForward,
    swigluBackward: addon.swigluBackward,
    geluForward: addon.geluForward,
    geluBackward: addon.geluBackward,
    add: addon.add,
    axpy: addon.axpy,
    logprobForward: addon.logprobForward,
    logprobBackward: addon.logprobBackward,
    logitsStats: addon.logitsStats,
    adamwStep: addon.adamwStep,
    sumSquares: addon.sumSquares,
    scale: addon.scale,
    sumSquaresInto: sumSquaresInto(addon.sumSquares),
  };
}
