// A LoRA adapter's files in PEFT's format, as bytes: what `orpo train --lora-r` writes (src/io/adapter.ts's
// saveAdapter writes these very bytes) and what the page offers as a download. No file system, so the browser
// bundle uses it as it is.
//   adapter_config.json        LoraConfig fields (peft_type "LORA", r, lora_alpha, target_modules, ...)
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight (r, in), ...lora_B.weight (out, r)
// The shapes are those of PEFT's nn.Linear factors for every module type: for GPT-2's Conv1D (weight stored
// (in, out)) PEFT still builds lora_A (r, in) and lora_B (out, r) and only transposes the merged delta
// (fan_in_fan_out = true), so the tensors are written alike for both families.
import type { LoraAdapters } from '../lora/adapters.js';
import { safetensorsBytes, type WeightDtype } from './bytes-model.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

/** PEFT's tensor name of a module's factor. */
export function peftTensorName(module: string, factor: 'A' | 'B'): string {
  return `${PREFIX}${module}.lora_${factor}.weight`;
}

/** adapter_config.json as PEFT (>= 0.10) writes it for a plain LoRA adapter. */
export function adapterConfigJson(adapters: LoraAdapters, baseModelNameOrPath: string | null): Record<string, unknown> {
  const s = adapters.settings;
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    // GPT-2's Conv1D stores its weight as (in, out): PEFT needs fan_in_fan_out to merge the delta transposed
    fan_in_fan_out: adapters.model.config.family === 'gpt2',
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: s.r,
    rank_pattern: {},
    revision: null,
    target_modules: s.targetModules.length === 1 && s.targetModules[0] === 'all-linear' ? 'all-linear' : [...s.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: s.useRslora === true,
  };
}

/** The adapters' tensors under PEFT's names (copies, so a later training step does not change what is written). */
export function adapterTensors(adapters: LoraAdapters): { name: string; shape: number[]; data: Float32Array }[] {
  const r = adapters.settings.r;
  return adapters.layers.flatMap((l) => [
    { name: peftTensorName(l.module, 'A'), shape: [r, l.inFeatures], data: Float32Array.from(adapters.A(l.module)) },
    { name: peftTensorName(l.module, 'B'), shape: [l.outFeatures, r], data: Float32Array.from(adapters.B(l.module)) },
  ]);
}

/** adapter_model.safetensors and adapter_config.json of the adapters, in the order saveAdapter writes them. */
export function adapterFolderBytes(adapters: LoraAdapters,
  opts: { baseModelNameOrPath?: string | null; dtype?: WeightDtype } = {}): Map<string, Uint8Array> {
  const config = adapterConfigJson(adapters, opts.baseModelNameOrPath ?? null);
  return new Map([
    [ADAPTER_WEIGHTS_FILE, safetensorsBytes(adapterTensors(adapters), opts.dtype ?? 'F32')],
    [ADAPTER_CONFIG_FILE, new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)],
  ]);
}
