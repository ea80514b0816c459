// What `--model DIR` may point at for eval and generate: a plain model folder, or a LoRA run's output (a PEFT
// adapter folder), which is applied to the base model its adapter_config.json names.

import type { WeightDtype } from '../model/layout.js';
import type { Kernels } from '../backend/kernels.js';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, loadAdapter, readAdapterConfig } from '../io/adapter.js';
import { loadModel } from '../io/hf-model.js';
import type { DecoderBase } from '../model/base.js';

export async function loadModelOrAdapter(dir: string,
  opts: { kernels?: Kernels; weightDtype?: WeightDtype | 'auto' } = {}): Promise<DecoderBase> {
  const isAdapter = await access(join(dir, ADAPTER_CONFIG_FILE)).then(() => true, () => false);
  if (!isAdapter) return loadModel(dir, opts);
  const { baseModelNameOrPath: base } = await readAdapterConfig(dir);
  if (base === null) {
    throw new Error(`${join(dir, ADAPTER_CONFIG_FILE)} names no base model (base_model_name_or_path); merge it first: ` +
      `orpo merge --base BASE_DIR --adapter ${dir} --out MERGED_DIR`);
  }
  const model = await loadModel(base, opts).catch((e: Error) => {
    throw new Error(`${dir} is a LoRA adapter for ${base}, which cannot be loaded here (${e.message}); ` +
      `orpo merge --base BASE_DIR --adapter ${dir} --out MERGED_DIR makes a standalone folder`);
  });
  await loadAdapter(dir, model);
  return model;
}
