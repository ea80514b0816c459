// GGUF export of a model (optionally with a LoRA adapter merged on the way) and of a LoRA adapter alone, for
// llama.cpp and everything built on it (node-llama-cpp, Ollama, LM Studio). Everything that could refuse the
// model or its tokenizer is checked before the first byte is written; the file is then streamed tensor by tensor
// (from a model folder: read, merged, encoded and written one tensor at a time, so memory holds one tensor, not
// the model) and replaces the target atomically. What goes into the file is planned in model-plan.ts, which the
// page uses for its download without a file system.

import { readParam } from '../../model/create.js';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';

import type { TokenizerFiles } from '../../data/tokenizer.js';
import type { DecoderBase } from '../../model/base.js';
import { parseConfig } from '../../model/config.js';
import { canonicalName, paramLayout, transpose2d } from '../../model/layout.js';
import type { ModelConfig, ParamSpec } from '../../model/types.js';
import { loraScaling, type LoraSettings } from '../../lora/config.js';
import type { LoraAdapters } from '../../lora/adapters.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, readAdapterConfig } from '../adapter.js';
import { readConfigJson } from '../hf-model.js';
import { listModelTensors } from '../model-files.js';
import { readSafetensorsHeader, readTensorF32, type TensorInfo } from '../safetensors.js';
import { ggufArchitecture, permuteRowsForInterleavedRope, tensorMappings, type GgufDtype, type ParamReader } from './architecture.js';
import { writeGguf, type GgufMetadata, type GgufTensorPlan } from './format.js';
import { ggufModelPlan, type GgufModelOptions } from './model-plan.js';
import { readTokenizerFiles } from '../tokenizer-files.js';
import { matchWeights } from '../weight-match.js';

export interface GgufWriteSummary {
  file: string;
  tensors: number;
  metadataKeys: number;
}

/** Writes a model, its parameters read through `read`, and its tokenizer as one GGUF file. */
async function writeGgufModel(config: ModelConfig, layout: readonly ParamSpec[], read: ParamReader, tokenizerFiles: TokenizerFiles,
  file: string, opts: GgufModelOptions): Promise<GgufWriteSummary> {
  const { metadata, tensors } = ggufModelPlan(config, layout, read, tokenizerFiles, opts);
  await writeGguf(file, metadata, tensors);
  return { file, tensors: tensors.length, metadataKeys: metadata.size };
}

/** Writes a model in memory and its tokenizer as one GGUF file. */
export async function writeModelGguf(model: DecoderBase, tokenizerFiles: TokenizerFiles, file: string,
  opts: GgufModelOptions = {}): Promise<GgufWriteSummary> {
  return writeGgufModel(model.config, model.layout, (name) => readParam(model, name), tokenizerFiles, file, opts);
}

/**
 * The parameters of a model folder, read one tensor at a time from its safetensors files (in orpo-ts's layout:
 * GPT-2's Conv1D transposed to (out, in)), after the checks loadModel makes: every parameter present once with
 * the shape config.json implies, nothing left over, no NaN or Inf.
 */
export async function folderParamReader(dir: string, config: ModelConfig): Promise<ParamReader> {
  const matched = matchWeights(dir, join(dir, 'config.json'), config, await listModelTensors(dir));
  const specs = new Map([...matched.keys()].map((p) => [p.name, p]));
  const found = new Map([...matched].map(([spec, info]) => [spec.name, info]));
  return async (name) => {
    const spec = specs.get(name)!;
    const stored = await readTensorF32(found.get(name)!);
    let values = stored;
    if (spec.transposed) {
      values = new Float32Array(spec.size);
      transpose2d(values, stored, spec.hfShape[0]!, spec.hfShape[1]!);
    }
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw new Error(`${dir}: parameter '${name}' holds NaN or Inf; the checkpoint is corrupt`);
    }
    return values;
  };
}

/**
 * A reader that adds each adapted weight's LoRA update, W += scaling * B A (as orpo merge does), as the weight is
 * read: merging costs one weight's memory at a time, not a second model.
 */
async function mergingReader(read: ParamReader, factors: readonly LoraFactors[], scaling: number): Promise<ParamReader> {
  const byWeight = new Map<string, { r: number; A: Float32Array; B: Float32Array }>();
  for (const f of factors) byWeight.set(f.weight, { r: f.r, A: await f.A(), B: await f.B() });
  return async (name) => {
    const w = await read(name);
    const lora = byWeight.get(name);
    if (lora === undefined) return w;
    const merged = Float32Array.from(w);
    const cols = lora.A.length / lora.r;
    const row = new Float64Array(cols);
    for (let o = 0; o < merged.length / cols; o++) {
      row.fill(0);
      for (let k = 0; k < lora.r; k++) {
        const b = scaling * lora.B[o * lora.r + k]!;
        const a = lora.A.subarray(k * cols, (k + 1) * cols);
        for (let i = 0; i < cols; i++) row[i] += b * a[i]!;
      }
      for (let i = 0; i < cols; i++) merged[o * cols + i] = merged[o * cols + i]! + row[i]!;
    }
    return merged;
  };
}

async function readModelConfig(dir: string): Promise<ModelConfig> {
  try {
    return parseConfig(await readConfigJson(dir));
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
}

/**
 * `orpo export gguf`: a model folder (with an adapter folder merged into it when given) -> one GGUF file,
 * streamed from the safetensors files one tensor at a time. The tokenizer is the adapter folder's when it
 * carries one (training may have added tokens), else the model's. A LoRA run's folder alone stands for its base
 * model (adapter_config.json's base_model_name_or_path) with the adapter merged.
 */
export async function exportModelFolderToGguf(folder: string, file: string,
  opts: { dtype?: GgufDtype; adapterDir?: string | null } = {}): Promise<GgufWriteSummary & { mergedModules: number; baseDir: string }> {
  let modelDir = folder;
  // a LoRA run (or checkpoint) holds only its adapter: export its base with the adapter merged
  if ((opts.adapterDir ?? null) === null && !(await exists(join(folder, 'config.json'))) && (await exists(join(folder, ADAPTER_CONFIG_FILE)))) {
    const base = (await readAdapterConfig(folder)).baseModelNameOrPath;
    if (base === null) throw new Error(`${folder} is a LoRA adapter whose adapter_config.json names no base model; give --model BASE --adapter ${folder}`);
    opts = { ...opts, adapterDir: folder };
    modelDir = base;
  }
  const config = await readModelConfig(modelDir);
  ggufArchitecture(config); // refuse before reading anything else
  let read = await folderParamReader(modelDir, config);
  let mergedModules = 0;
  let tokenizerDir = modelDir;
  if (opts.adapterDir !== undefined && opts.adapterDir !== null) {
    const adapter = await readAdapterFactors(opts.adapterDir, config, modelDir);
    read = await mergingReader(read, adapter.factors, loraScaling(adapter.settings));
    mergedModules = adapter.factors.length;
    if (await exists(join(opts.adapterDir, 'tokenizer.json'))) tokenizerDir = opts.adapterDir;
  }
  const files = await readTokenizerFiles(tokenizerDir, config.modelType);
  const name = basename(resolve(modelDir));
  const summary = await writeGgufModel(config, paramLayout(config), read, files, file, { dtype: opts.dtype, name });
  return { ...summary, mergedModules, baseDir: modelDir };
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(() => true, () => false);
}

// ------------------------------------------------------------------------------------------------ LoRA adapters

/** One adapted projection: its base parameter and its factors A (r, in) and B (out, r). */
export interface LoraFactors {
  /** the base weight's Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight */
  weight: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
  A: () => Float32Array | Promise<Float32Array>;
  B: () => Float32Array | Promise<Float32Array>;
}

/**
 * A LoRA adapter as llama.cpp's llama_adapter_lora_init reads it: general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha, and per adapted weight `<tensor>.lora_a` (r, in) and `<tensor>.lora_b` (out, r) under the
 * base tensor's GGUF name. llama.cpp scales by alpha / r; rank-stabilised LoRA (alpha / sqrt(r)) is written as
 * the alpha that gives the same factor. B's rows get the same RoPE permutation as the base weight's.
 */
export async function writeLoraGguf(config: ModelConfig, factors: readonly LoraFactors[], settings: { alpha: number; useRslora?: boolean },
  file: string, opts: { dtype?: 'f32' | 'f16' } = {}): Promise<GgufWriteSummary> {
  const arch = ggufArchitecture(config);
  if (factors.length === 0) throw new Error('the adapter adapts no module');
  const ranks = new Set(factors.map((f) => f.r));
  if (ranks.size !== 1) throw new Error(`the adapter's modules have different ranks (${[...ranks].join(', ')}); GGUF adapters have one alpha for all`);
  const r = factors[0]!.r;
  const alpha = loraScaling({ r, alpha: settings.alpha, useRslora: settings.useRslora }) * r;
  const mappings = new Map(tensorMappings(config, factors.map((f) => f.weight)).map((m) => [m.source, m]));
  const type = opts.dtype === 'f16' ? 'F16' : 'F32';
  const metadata: GgufMetadata = new Map();
  metadata.set('general.architecture', { type: 'string', value: arch });
  metadata.set('general.type', { type: 'string', value: 'adapter' });
  metadata.set('adapter.type', { type: 'string', value: 'lora' });
  metadata.set('adapter.lora.alpha', { type: 'f32', value: alpha });
  metadata.set('general.quantization_version', { type: 'u32', value: 2 });
  const tensors: GgufTensorPlan[] = [];
  for (const f of factors) {
    const mapping = mappings.get(f.weight)!;
    tensors.push({ name: `${mapping.name}.lora_a`, shape: [f.r, f.inFeatures], type, data: f.A });
    tensors.push({
      name: `${mapping.name}.lora_b`, shape: [f.outFeatures, f.r], type,
      data: async () => {
        const b = await f.B();
        return mapping.permuteHeads === null ? b : permuteRowsForInterleavedRope(b, mapping.permuteHeads, f.r);
      },
    });
  }
  await writeGguf(file, metadata, tensors);
  return { file, tensors: tensors.length, metadataKeys: metadata.size };
}

/** The factors of in-memory adapters (views, read when written). */
export function adapterFactors(adapters: LoraAdapters): LoraFactors[] {
  return adapters.layers.map((l) => ({
    weight: `${l.module}.weight`, r: adapters.settings.r, inFeatures: l.inFeatures, outFeatures: l.outFeatures,
    A: () => adapters.A(l.module), B: () => adapters.B(l.module),
  }));
}

const PEFT_FACTOR = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;

/**
 * A PEFT adapter folder's factors, checked against the base model's config (every factor pair present, shapes
 * that fit the base's linear layers), read lazily; in the base model's parameter order.
 */
export async function readAdapterFactors(adapterDir: string, config: ModelConfig, baseDir: string):
  Promise<{ factors: LoraFactors[]; settings: LoraSettings }> {
  const adapterConfig = await readAdapterConfig(adapterDir);
  const layout = new Map(paramLayout(config).map((p) => [p.name, p]));
  const weightsFile = join(adapterDir, ADAPTER_WEIGHTS_FILE);
  const header = await readSafetensorsHeader(weightsFile);
  const byModule = new Map<string, { A?: TensorInfo; B?: TensorInfo }>();
  for (const info of header.tensors.values()) {
    const m = PEFT_FACTOR.exec(info.name);
    if (m === null) throw new Error(`${weightsFile}: tensor '${info.name}' is not a LoRA factor (base_model.model.<module>.lora_A/lora_B.weight)`);
    const entry = byModule.get(m[1]!) ?? {};
    entry[m[2] as 'A' | 'B'] = info;
    byModule.set(m[1]!, entry);
  }
  const r = adapterConfig.settings.r;
  const factors: LoraFactors[] = [];
  for (const [module, { A, B }] of byModule) {
    if (A === undefined || B === undefined) throw new Error(`${weightsFile}: module '${module}' has only one of lora_A and lora_B`);
    const spec = layout.get(`${module}.weight`);
    if (spec === undefined || spec.shape.length !== 2) {
      throw new Error(`${weightsFile}: module '${module}' is not a linear layer of the ${config.modelType} base model in ${baseDir}`);
    }
    const [outFeatures, inFeatures] = spec.shape as [number, number];
    if (A.shape.join() !== `${r},${inFeatures}` || B.shape.join() !== `${outFeatures},${r}`) {
      throw new Error(`${weightsFile}: module '${module}' has lora_A [${A.shape}] and lora_B [${B.shape}], but r=${r} and the base ` +
        `model imply [${r},${inFeatures}] and [${outFeatures},${r}]; is this adapter for a different base model?`);
    }
    factors.push({ weight: `${module}.weight`, r, inFeatures, outFeatures, A: () => readTensorF32(A), B: () => readTensorF32(B) });
  }
  if (factors.length === 0) throw new Error(`${weightsFile}: holds no LoRA factors`);
  const order = new Map([...layout.keys()].map((name, i) => [name, i]));
  factors.sort((a, b) => order.get(a.weight)! - order.get(b.weight)!);
  return { factors, settings: adapterConfig.settings };
}

/**
 * `orpo export gguf-lora`: a PEFT adapter folder -> a GGUF LoRA adapter. Only the base model's config.json is
 * read (for the architecture and the head counts of the RoPE permutation), not its weights.
 */
export async function exportAdapterFolderToGguf(adapterDir: string, file: string,
  opts: { baseDir?: string | null } = {}): Promise<GgufWriteSummary & { baseDir: string }> {
  const baseDir = opts.baseDir ?? (await readAdapterConfig(adapterDir)).baseModelNameOrPath;
  if (baseDir === null) {
    throw new Error(`${adapterDir}: adapter_config.json names no base_model_name_or_path; give --model with the base model folder`);
  }
  let config: ModelConfig;
  try {
    config = parseConfig(await readConfigJson(baseDir));
  } catch (e) {
    throw new Error(`${baseDir} (the adapter's base model): ${(e as Error).message}`);
  }
  const { factors, settings } = await readAdapterFactors(adapterDir, config, baseDir);
  const summary = await writeLoraGguf(config, factors, settings, file);
  return { ...summary, baseDir };
}
