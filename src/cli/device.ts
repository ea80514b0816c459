// Where `orpo train` computes. The model, its adapters and everything read from or written to files live on the
// host (typed arrays, the CPU kernels); with `--backend webgpu` (or ORPO_BACKEND=webgpu) the training step runs on a
// copy in GPU memory: the weights go up once, and come back only when something is written (a checkpoint, the
// final model), so files, resume and the report are the same whichever backend trained.
import { requestedBackend, type BackendName } from '../backend/index.js';
import type { Backend } from '../backend/kernels.js';
import type { LoraAdapters } from '../lora/adapters.js';
import { LoraAdapters as Adapters } from '../lora/adapters.js';
import type { DecoderBase } from '../model/base.js';
import { copyParamsToHost, modelOnBackend } from '../model/create.js';
import { AdamW } from '../optim/adamw.js';

/** The model (and adapters) a run trains, on the backend it trains on, and the way back to the host copies. */
export interface TrainingDevice<F, I> {
  readonly name: string;
  readonly kernels: Backend<F, I>;
  readonly model: DecoderBase<F, I>;
  readonly adapters: LoraAdapters<F, I> | null;
  /** the host model's (or adapters') parameters := the trained ones; before anything is written */
  syncToHost(): Promise<void>;
  /** AdamW's state as host arrays, for a checkpoint */
  hostOptimizer(optimizer: AdamW<F>): Promise<AdamW>;
  /** gives the device's memory back (the GPU backend's buffers); the host copies stay */
  release(): void;
}

/** the backend the run asks for: --backend, else ORPO_BACKEND, else the best CPU one */
export function backendOf(option: BackendName | null): BackendName | undefined {
  return option ?? requestedBackend();
}

/** training on the host model itself: nothing to copy */
export function hostDevice(model: DecoderBase, adapters: LoraAdapters | null): TrainingDevice<Float32Array, Int32Array> {
  return {
    name: model.kernels.name, kernels: model.kernels, model, adapters,
    syncToHost: () => Promise.resolve(),
    hostOptimizer: (optimizer) => Promise.resolve(optimizer),
    release: () => { /* nothing held */ },
  };
}

/**
 * The host model (with its adapters, already initialised or loaded from a checkpoint) copied to a WebGPU device.
 * Throws NoWebGpuAdapterError, naming what is missing, when Dawn finds no adapter.
 */
export async function webGpuDevice(host: DecoderBase, hostAdapters: LoraAdapters | null): Promise<TrainingDevice<unknown, unknown>> {
  const { createNodeWebGpuBackend } = await import('../backend/webgpu/node-gpu.js');
  const gpu = await createNodeWebGpuBackend();
  return deviceCopy(gpu.kernels, host, hostAdapters, `webgpu (${gpu.runtime.info.adapter})`, () => gpu.runtime.destroy());
}

/** the host model and adapters copied to `kernels`' backend (exported for tests: any Backend will do) */
export function deviceCopy<F, I>(kernels: Backend<F, I>, host: DecoderBase, hostAdapters: LoraAdapters | null, name: string,
  release: () => void = () => undefined): TrainingDevice<F, I> {
  const model = modelOnBackend(host, kernels);
  let adapters: Adapters<F, I> | null = null;
  if (hostAdapters !== null) {
    adapters = new Adapters(model, hostAdapters.settings).attach();
    kernels.upload(adapters.params, hostAdapters.params);
    adapters.setDropoutSteps(hostAdapters.getDropoutSteps());
  }
  return {
    name, kernels, model, adapters,
    async syncToHost(): Promise<void> {
      if (adapters !== null && hostAdapters !== null) {
        hostAdapters.params.set(await kernels.download(adapters.params));
        hostAdapters.setDropoutSteps(adapters.getDropoutSteps());
      } else {
        await copyParamsToHost(model, host);
      }
    },
    async hostOptimizer(optimizer: AdamW<F>): Promise<AdamW> {
      const copy = new AdamW(optimizer.size, optimizer.hp, host.kernels);
      copy.m.set(await kernels.download(optimizer.m));
      copy.v.set(await kernels.download(optimizer.v));
      copy.step = optimizer.step;
      return copy;
    },
    release,
  };
}
