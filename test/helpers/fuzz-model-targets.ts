// What the model-file fuzz cases (fuzz-model.ts) run inside the fuzz runner's worker: a file or folder read the way
// `orpo train` and `orpo eval` read it. No import of fuzz.ts here: the worker loads this module while fuzz.ts,
// its entry point, is still being evaluated, and importing it back would wait on itself forever.

import { loadAdapter } from '../../src/io/adapter.js';
import { loadModel } from '../../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.js';
import { createModel } from '../../src/model/create.js';

/** The base model of the fuzz cases' folders and adapters (fuzz-model.ts writes its seeds from it). */
export const TINY_LLAMA = {
  model_type: 'llama', vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
  num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, rms_norm_eps: 1e-6, rope_theta: 10000,
  rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  bos_token_id: 1, eos_token_id: [2, 3], tie_word_embeddings: false,
};

/** Reads a safetensors file's header and then every tensor in it, as loading a model does. */
export async function readSafetensors(file: string): Promise<number> {
  const header = await readSafetensorsHeader(file);
  let values = 0;
  for (const info of header.tensors.values()) values += (await readTensorF32(info)).length;
  return values;
}

/** Loads a model folder: config.json, the index when sharded, every weight file's header and data. */
export async function loadModelFolder(dir: string): Promise<number> {
  return (await loadModel(dir)).params.length;
}

/** Loads a PEFT adapter folder onto TINY_LLAMA: adapter_config.json, then adapter_model.safetensors. */
export async function loadAdapterFolder(dir: string): Promise<number> {
  return (await loadAdapter(dir, createModel(TINY_LLAMA, { seed: 1 }))).params.length;
}
