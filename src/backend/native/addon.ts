// Loads the compiled C++ addon (native/, built by node-gyp during `npm install` into build/Release/).
// Loading never throws: a missing or broken build is reported as a reason string so the caller can fall back.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../kernels.js';

/** How the addon's GEMM runs on this CPU (kernelInfo): what a bench machine line reports. */
export interface NativeKernelInfo {
  /** the kernel table: 'avx512', 'avx2', 'generic' or 'neon' */
  isa: string;
  /** detected data caches in bytes (0: not found); L3 is the whole cache, shared by l3Sharing logical CPUs (0: not said) */
  cache: { l1d: number; l2: number; l3: number; l3Sharing: number; source: string };
  /** micro-tile (mr x nr) and cache blocks; blocks: 'cache sizes' (derived), 'fixed', 'ORPO_GEMM_BLOCKS' or 'set' */
  gemm: { mr: number; nr: number; kc: number; mc: number; nc: number; blocks: string };
  bf16: {
    /**
     * the path bf16 products take: 'dpbf16' (VDPBF16PS), 'fma' (operands rounded to bf16, float32 FMA) or 'amx'
     * (TDPBF16PS on AMX tiles)
     */
    kernel: 'dpbf16' | 'fma' | 'amx';
    /** why: 'probe' (the fastest one here), 'ORPO_BF16_KERNEL', 'set' (configureGemm) or 'only' (fma is all there is) */
    source: string;
    /** whether this CPU and kernel table can run the dpbf16 path */
    dpbf16: boolean;
    /** whether the amx path can run: AMX tiles, granted by Linux, and its start-up check passed */
    amx: boolean;
    /** single-thread GFLOP/s the probe measured for float32 and each bf16 path (0: not measured) */
    probeGflops: { f32: number; fma: number; dpbf16: number; amx: number };
  };
}

/**
 * What the addon exports: every kernel with the Kernels signature (Float32Array only), plus diagnostics. The bf16-weight
 * kernels (matmulForwardBf16, matmulBackwardBf16, embeddingForwardBf16) take the Bf16Buffer itself and read its `data`
 * (the Float32Array carrier, which must hold ceil(length / 2) elements) and `length` (bfloat16 values).
 */
export type NativeAddon = Omit<Kernels, 'name'> & {
  /** the instruction set chosen at load time: 'avx512', 'avx2', 'generic' or 'neon' */
  isa(): string;
  /** measured GFLOP/s of a tight loop of independent FMAs on `threads` threads: the practical peak */
  fmaPeakGflops(threads: number): number;
  /** the GEMM's cache blocks and bf16 path; the first call runs the bf16 probe (about 10 ms) unless a bf16 GEMM did */
  kernelInfo(): NativeKernelInfo;
  /**
   * Diagnostics and tests: the bf16 path ('auto' = the probe's choice, 'fma', 'dpbf16', 'amx') and the cache blocks
   * ('derived', 'fixed', 'KC,MC,NC'); null leaves one unchanged. Throws a RangeError for a value this CPU cannot run.
   */
  configureGemm(bf16Kernel: 'auto' | 'fma' | 'dpbf16' | 'amx' | null, blocks: string | null): void;
};

/**
 * dist/src/backend/native/addon.js -> <package root>/build/Release/orpo_native.node, or ORPO_NATIVE_ADDON (a path to
 * another build of the same addon, for testing a build without replacing the one in use).
 */
export const addonPath = process.env.ORPO_NATIVE_ADDON
  || fileURLToPath(new URL('../../../../build/Release/orpo_native.node', import.meta.url));

export type AddonLoad = { ok: true; addon: NativeAddon } | { ok: false; reason: string };

let cached: AddonLoad | undefined;

export function loadNativeAddon(): AddonLoad {
  if (cached) return cached;
  try {
    const require = createRequire(import.meta.url);
    cached = { ok: true, addon: require(addonPath) as NativeAddon };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    cached = { ok: false, reason: `cannot load ${addonPath} (${message}); rebuild it with \`npm rebuild\`` };
  }
  return cached;
}
