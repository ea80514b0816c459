// Where `orpo train` computes: --backend, else ORPO_BACKEND, else the best CPU backend. With webgpu the step runs
// on a copy of the model in GPU memory (src/train/device.ts); this module adds what only Node has: Dawn.
import { requestedBackend, type BackendName } from '../backend/index.js';
import type { LoraAdapters } from '../lora/adapters.js';
import type { DecoderBase } from '../model/base.js';
import { deviceCopy, type TrainingDevice } from '../train/device.js';

export { hostDevice, type TrainingDevice } from '../train/device.js';

/** the backend the run asks for: --backend, else ORPO_BACKEND, else undefined (the best CPU one) */
export function backendOf(option: BackendName | null): BackendName | undefined {
  return option ?? requestedBackend();
}

/**
 * The host model (with its adapters, already initialised or loaded from a checkpoint) copied to a WebGPU device
 * through Dawn. Throws NoWebGpuAdapterError, naming what is missing, when Dawn finds no adapter.
 */
export async function webGpuDevice(host: DecoderBase, hostAdapters: LoraAdapters | null): Promise<TrainingDevice<unknown, unknown>> {
  const { createNodeWebGpuBackend } = await import('../backend/webgpu/node-gpu.js');
  const gpu = await createNodeWebGpuBackend();
  return deviceCopy(gpu.kernels, host, hostAdapters, `webgpu (${gpu.runtime.info.adapter})`, () => gpu.runtime.destroy());
}
