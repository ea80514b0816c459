// Backend selection: the native addon when it loads, else the TypeScript reference backend with one warning.
// ORPO_BACKEND=js|native forces a choice (native that cannot load is then an error, not a silent fallback).
// ORPO_BACKEND=webgpu asks for the GPU (src/backend/webgpu, acquired asynchronously by the caller: see
// requestedBackend); the host kernels are then the best CPU ones, for loading, saving and generation.
import type { Kernels } from './kernels.js';
import { jsKernels } from './js/kernels.js';
import { loadNativeAddon } from './native/addon.js';
import { createNativeKernels } from './native/kernels.js';

export type { Kernels, FloatArray } from './kernels.js';

export const BACKEND_NAMES = ['js', 'native', 'webgpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** ORPO_BACKEND, checked: undefined when unset or empty */
export function requestedBackend(): BackendName | undefined {
  const v = process.env.ORPO_BACKEND;
  if (v === undefined || v === '') return undefined;
  if (!(BACKEND_NAMES as readonly string[]).includes(v)) {
    throw new Error(`ORPO_BACKEND=${v} is not a backend; use ORPO_BACKEND=js, native or webgpu`);
  }
  return v as BackendName;
}

/** the CPU kernels named `name` (js or native); native that cannot load is an error naming why */
export function hostKernelsNamed(name: 'js' | 'native'): Kernels {
  if (name === 'js') return jsKernels;
  const native = getNativeKernels();
  if (native) return native;
  const load = loadNativeAddon();
  throw new Error(`the native backend is unavailable: ${load.ok ? 'unknown error' : load.reason}`);
}

let selected: Kernels | undefined;
let nativeKernels: Kernels | undefined;

/** The native backend, or undefined when the addon is not built for this machine. */
export function getNativeKernels(): Kernels | undefined {
  if (nativeKernels) return nativeKernels;
  const load = loadNativeAddon();
  if (load.ok) nativeKernels = createNativeKernels(load.addon);
  return nativeKernels;
}

/** The instruction set the native kernels run on here ('avx512', 'avx2', 'generic', 'neon'), for machine lines. */
export function nativeIsa(): string | undefined {
  const load = loadNativeAddon();
  return load.ok ? load.addon.isa() : undefined;
}

/** Names of the backends usable here, best first. */
export function availableBackends(): string[] {
  return getNativeKernels() ? ['native', 'js'] : ['js'];
}

/** The backend every layer should use (chosen once per process). */
export function getKernels(): Kernels {
  if (selected) return selected;
  const forced = requestedBackend();
  if (forced === 'js') {
    selected = jsKernels;
  } else {
    const native = getNativeKernels();
    if (native) {
      selected = native;
    } else {
      const load = loadNativeAddon();
      const reason = load.ok ? 'unknown error' : load.reason;
      if (forced === 'native') throw new Error(`ORPO_BACKEND=native but the native addon is unavailable: ${reason}`);
      process.stderr.write(`orpo-ts: native kernels unavailable, using the TypeScript backend (slow): ${reason}\n`);
      selected = jsKernels;
    }
  }
  return selected;
}
