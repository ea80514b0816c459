// The native backend: the Kernels interface over the C++ addon. The addon's functions already take the
// interface's arguments in the interface's order, so this is a thin typed wrapper with a name.
import type { Kernels } from '../kernels.js';
import type { NativeAddon, NativeKernelInfo } from './addon.js';
import { hostMemory, sumSquaresInto } from '../host.js';

/**
 * The line `--bf16` gets, once per process, where the bf16 path in use multiplies slower than float32 on this CPU
 * (the probe picks the faster path, so in auto mode: no VDPBF16PS here, or one with less throughput than two FMA
 * ports; or ORPO_BF16_KERNEL forced the slower one): the numbers stay bf16's, as asked, and the user learns what that
 * costs. Null where bf16 is at least 98% of float32's speed (the probe's noise).
 */
export function bf16SlowerNote(info: NativeKernelInfo): string | null {
  const p = info.bf16.probeGflops;
  const used = info.bf16.kernel === 'dpbf16' ? p.dpbf16 : info.bf16.kernel === 'amx' ? p.amx : p.fma;
  if (!(p.f32 > 0) || !(used > 0) || used >= 0.98 * p.f32) return null;
  const path = info.bf16.kernel === 'dpbf16' ? 'VDPBF16PS'
    : info.bf16.kernel === 'amx' ? 'TDPBF16PS on AMX tiles' : 'bf16-rounded operands through float32 FMA';
  return `orpo-ts: on this CPU bf16 matrix products are ${Math.round(100 * (1 - used / p.f32))}% slower than float32 ` +
    `(${info.isa} kernels, ${path}, chosen by ${info.bf16.source}: ${used.toFixed(0)} against ${p.f32.toFixed(0)} ` +
    'GFLOP/s on one thread). The products keep bf16 numbers, as asked; without bf16 they would be faster here.';
}

let bf16Noted = false;

/** Runs the addon's bf16 probe (about 10 ms, once) when bf16 is first switched on and writes bf16SlowerNote once. */
function noteSlowBf16(addon: NativeAddon): void {
  if (bf16Noted) return;
  bf16Noted = true;
  const note = bf16SlowerNote(addon.kernelInfo());
  if (note) process.stderr.write(note + '\n');
}

export function createNativeKernels(addon: NativeAddon): Kernels {
  return {
    name: 'native',
    // typed-array memory and the copies are the TypeScript backend's; the O(n) passes that run every step are the
    // addon's (threaded: one JS thread zeroing or hashing dropout masks left the other cores waiting)
    ...hostMemory,
    zero: addon.zero,
    dropoutForward: addon.dropoutForward,
    dropoutBackward: addon.dropoutBackward,
    // a row gather is the embedding lookup with the rows as ids, a row scatter-add its backward (as in host.ts)
    gatherRows: (out, inp, rows, M, C) => addon.embeddingForward(out, rows, inp, M, C, false),
    scatterAddRows: (dinp, dout, rows, M, C) => addon.embeddingBackward(dinp, dout, rows, M, C),
    setThreads: (n) => addon.setThreads(n),
    getThreads: () => addon.getThreads(),
    setMatmulBf16: (on) => {
      addon.setMatmulBf16(on);
      if (on) noteSlowBf16(addon);
    },
    getMatmulBf16: () => addon.getMatmulBf16(),
    gemm: addon.gemm,
    matmulForward: addon.matmulForward,
    matmulBackward: addon.matmulBackward,
    matmulForwardBf16: addon.matmulForwardBf16,
    matmulBackwardBf16: addon.matmulBackwardBf16,
    embeddingForwardBf16: addon.embeddingForwardBf16,
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
