// What the model-file fuzz cases (fuzz-model.ts) run inside the fuzz runner's worker: a file or folder read the way
// `orpo train` and `orpo eval` read it. No import of fuzz.ts here: the worker loads this module while fuzz.ts,
// its entry point, is still being evaluated, and importing it back would wait on itself forever.

import { loadModel } from '../../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.js';

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
