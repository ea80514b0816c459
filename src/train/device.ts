// Training on another backend than the host's: the model, its adapters and everything read from or written to
// files live on the host (typed arrays, the CPU kernels); a device copy (WebGPU) trains, and its weights come back
// only when something reads them (a checkpoint, the final model, a download, generation). `orpo train --backend
// webgpu` (src/cli/device.ts) and the page's worker both train through this. No Node API: the browser bundle has it.
import type { Backend } from '../backend/kernels.js';
import { LoraAdapters } from '../lora/adapters.js';
import type { DecoderBase } from '../model/base.js';
import { copyParamsToHost, modelOnBackend } from '../model/create.js';
import { AdamW } from '../optim/adamw.js';

/** The model (and adapters) a run trains, on the backend it trains on, and the way back to the host copies. */
export interface TrainingDevice<F, I> {
  /** what a log or a page shows: the host kernels' name, or `webgpu (adapter)` */
  readonly name: string;
  readonly kernels: Backend<F, I>;
  readonly model: DecoderBase<F, I>;
  readonly adapters: LoraAdapters<F, I> | null;
  /** true when `model` is the host model itself (nothing to copy back) */
  readonly onHost: boolean;
  /** the host model's parameters (under LoRA: the host adapters' and their dropout counters) := the trained ones */
  syncToHost(): Promise<void>;
  /** AdamW's state as host arrays, for a checkpoint */
  hostOptimizer(optimizer: AdamW<F>): Promise<AdamW>;
  /** gives the device's memory back; the host copies stay */
  release(): void;
}

/** training on the host model itself: nothing to copy */
export function hostDevice(model: DecoderBase, adapters: LoraAdapters | null): TrainingDevice<Float32Array, Int32Array> {
  return {
    name: model.kernels.name, kernels: model.kernels, model, adapters, onHost: true,
    syncToHost: () => Promise.resolve(),
    hostOptimizer: (optimizer) => Promise.resolve(optimizer),
    release: () => { /* nothing held */ },
  };
}

/**
 * The host model and its adapters (initialised or loaded from a checkpoint, with their dropout counters) copied to
 * `kernels`' backend. The device adapters take the host adapters' seed, so they draw the same dropout masks; under
 * LoRA only the adapters come back, the base being frozen.
 */
export function deviceCopy<F, I>(kernels: Backend<F, I>, host: DecoderBase, hostAdapters: LoraAdapters | null, name: string,
  release: () => void = () => undefined): TrainingDevice<F, I> {
  const model = modelOnBackend(host, kernels);
  let adapters: LoraAdapters<F, I> | null = null;
  if (hostAdapters !== null) {
    adapters = new LoraAdapters(model, hostAdapters.settings, { seed: hostAdapters.seed }).attach();
    kernels.upload(adapters.params, hostAdapters.params);
    adapters.setDropoutSteps(hostAdapters.getDropoutSteps());
  }
  return {
    name, kernels, model, adapters, onHost: false,
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
