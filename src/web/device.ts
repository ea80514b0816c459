/// <reference types="@webgpu/types" />
// Where the page trains. The session's model, its adapters, generation and every download live on the host (typed
// arrays, the TypeScript kernels); a training backend, when the page has one (WebGPU), gets a copy of the model
// (and adapters) for one train() call, and the trained weights come back when that call returns (finished or
// paused), before anything reads them: the copy is src/train/device.ts's, as `orpo train --backend webgpu` makes
// it; this module adds what only a page has (navigator.gpu, and the page's words when there is no adapter).
import type { Backend } from '../backend/kernels.js';
import { createWebGpuBackend, NoWebGpuAdapterError } from '../backend/webgpu/index.js';

/** A backend opened for one train() call: its kernels, the name the page shows, and the way to give it back. */
export interface OpenedBackend<F, I> {
  /** what the page and the self-test report: `webgpu (adapter)`, or the kernels' name */
  readonly name: string;
  readonly kernels: Backend<F, I>;
  /** gives the backend's memory back (the GPU device); called once the trained weights are on the host */
  release(): void;
}

/** Something a session can train on besides the host: opened anew for each train() call. */
export interface TrainingBackend {
  readonly name: string;
  open(): Promise<OpenedBackend<unknown, unknown>>;
}

/** Whether this page can train on WebGPU, and if not, why not (in words for the page). */
export type WebGpuAvailability =
  | { readonly available: true; readonly adapter: string; readonly isSoftware: boolean; readonly backend: TrainingBackend }
  | { readonly available: false; readonly reason: string };

/**
 * Asks `gpu` (the page's or worker's navigator.gpu) for an adapter and a device as the backend will, and gives
 * the device back at once: each train() call opens its own, so that nothing a run allocated on the GPU outlives it.
 * The reasons are the browser's side of NoWebGpuAdapterError (whose no-adapter advice is about Node's Dawn).
 */
export async function probeWebGpu(gpu: GPU | undefined): Promise<WebGpuAvailability> {
  if (gpu === undefined) {
    return {
      available: false,
      reason: 'navigator.gpu is undefined: this browser has no WebGPU, or it is switched off (Chromium on Linux needs ' +
        '--enable-unsafe-webgpu; every browser needs the page served over https or from localhost)',
    };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    return { available: false, reason: `navigator.gpu.requestAdapter() failed: ${(error as Error).message}` };
  }
  if (adapter === null) {
    return {
      available: false,
      reason: 'navigator.gpu.requestAdapter() found no adapter: the browser has WebGPU but no GPU it will use ' +
        '(a blocked driver, GPU access switched off, or a headless browser without a software adapter)',
    };
  }
  try {
    const { runtime } = await createWebGpuBackend(gpu);
    const { adapter: name, isSoftware } = runtime.info;
    runtime.destroy();
    return { available: true, adapter: name, isSoftware, backend: webGpuTrainingBackend(gpu, name) };
  } catch (error) {
    const message = (error as Error).message;
    return { available: false, reason: error instanceof NoWebGpuAdapterError ? message : `the WebGPU device could not be created: ${message}` };
  }
}

/** The WebGPU backend on `gpu`, a new device for each train() call (destroyed with everything on it afterwards). */
export function webGpuTrainingBackend(gpu: GPU, adapter: string): TrainingBackend {
  const name = `webgpu (${adapter})`;
  return {
    name,
    async open(): Promise<OpenedBackend<unknown, unknown>> {
      const { runtime, kernels } = await createWebGpuBackend(gpu);
      return { name, kernels: kernels as Backend<unknown, unknown>, release: () => runtime.destroy() };
    },
  };
}
