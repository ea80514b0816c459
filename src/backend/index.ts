// Backend selection. (Minimal placeholder by the lead: the native-backend engineer owns this file and replaces it
// with native-first selection and ORPO_BACKEND handling.)
import type { Kernels } from './kernels.js';
import { jsKernels } from './js/kernels.js';

export function getKernels(): Kernels {
  return jsKernels;
}

export function availableBackends(): string[] {
  return ['js'];
}
