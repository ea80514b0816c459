// Loads the compiled C++ addon (native/, built by node-gyp during `npm install` into build/Release/).
// Loading never throws: a missing or broken build is reported as a reason string so the caller can fall back.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../kernels.js';

/** What the addon exports: every kernel with the Kernels signature (Float32Array only), plus diagnostics. */
export type NativeAddon = Omit<Kernels, 'name'> & {
  /** the instruction set chosen at load time: 'avx512', 'avx2', 'generic' or 'neon' */
  isa(): string;
  /** measured GFLOP/s of a tight loop of independent FMAs on `threads` threads: the practical peak */
  fmaPeakGflops(threads: number): number;
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
