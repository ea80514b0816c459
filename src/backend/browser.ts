// Backend selection in a web page: a page cannot load the native addon (a Node .node file), so every layer runs on
// the TypeScript reference backend. The browser bundle (scripts/build-web.mjs) puts this module in place of
// ./index.ts, which loads the addon through node:module; the exports mirror that module's, and their types are
// checked against it here so that the swap cannot drift from what the rest of the core imports.
import type * as NodeBackend from './index.js';
import type { Kernels } from './kernels.js';
import { jsKernels } from './js/kernels.js';

export type { Kernels, FloatArray } from './kernels.js';

/** What the page tells its user about where the numbers are computed. */
export const BROWSER_BACKEND_NOTE = 'TypeScript backend (jsKernels, one thread): a page cannot load the native addon; ' +
  'the numbers are the same as `ORPO_BACKEND=js orpo train`, at a fraction of the native speed';

export const getNativeKernels: typeof NodeBackend.getNativeKernels = (): Kernels | undefined => undefined;
export const nativeIsa: typeof NodeBackend.nativeIsa = (): string | undefined => undefined;
export const availableBackends: typeof NodeBackend.availableBackends = (): string[] => [jsKernels.name];
export const getKernels: typeof NodeBackend.getKernels = (): Kernels => jsKernels;
