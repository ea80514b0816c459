/// <reference types="@webgpu/types" />
// The WebGPU backend (step 1 of issue 15): a runtime that owns device memory and batches work, and the kernel
// interface over its tensors. Browser-safe: nothing here imports Node; Node callers use ./node-gpu.ts.
import { acquireDevice, type AcquiredDevice } from './device.js';
import { WebGpuKernels } from './kernels.js';
import { WebGpuRuntime } from './runtime.js';

export { GpuTensor, type ElementType, type PoolStats } from './buffers.js';
export { NoWebGpuAdapterError, acquireDevice, type AcquiredDevice, type WebGpuDeviceInfo } from './device.js';
export { WebGpuRuntime, type KernelSpec } from './runtime.js';
export { WebGpuKernels } from './kernels.js';
export { KERNELS } from './kernel-table.js';

export interface WebGpuBackend {
  readonly runtime: WebGpuRuntime;
  readonly kernels: WebGpuKernels;
}

export function webGpuBackendOn(acquired: AcquiredDevice): WebGpuBackend {
  const runtime = new WebGpuRuntime(acquired);
  return { runtime, kernels: new WebGpuKernels(runtime) };
}

/** the backend on `gpu` (default navigator.gpu); throws NoWebGpuAdapterError when there is no adapter */
export async function createWebGpuBackend(gpu?: GPU | null): Promise<WebGpuBackend> {
  return webGpuBackendOn(await acquireDevice(gpu));
}
