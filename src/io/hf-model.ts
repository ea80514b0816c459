// Hugging Face model folders in and out: config.json + safetensors (single or sharded, F32/F16/BF16) -> a model
// with its parameters in one flat buffer; and back, in the layout transformers' save_pretrained writes.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kernels } from '../backend/kernels.js';
import { parseConfig } from '../model/config.js';
import { emptyModel } from '../model/create.js';
import type { DecoderBase } from '../model/base.js';
import { canonicalName, headParamName, hfLayoutTensors, paramLayout, transpose2d } from '../model/layout.js';
import type { ModelConfig, ParamSpec } from '../model/types.js';
import { listModelTensors, writeModelTensors } from './model-files.js';
import { quoteUntrusted, readTensorF32, shortenUntrusted, type NamedTensor, type SafetensorsWriteDtype, type TensorInfo } from './safetensors.js';
import { writeFileAtomically } from './atomic-file.js';

// Real config.json files are a few KB (a few MB with huge label maps); a larger one is refused before it is read.
const MAX_CONFIG_BYTES = 16 << 20;

export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    const stats = await stat(file);
    if (!stats.isFile()) throw new Error(`${file}: is not a regular file (a folder, pipe or device?)`);
    if (stats.size > MAX_CONFIG_BYTES) {
      throw new Error(`${file}: is ${stats.size} bytes, more than the ${MAX_CONFIG_BYTES} any model's config needs`);
    }
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new Error(`${file}: not found; a Hugging Face model folder needs config.json next to its safetensors weights`);
    }
    throw e;
  }
  try {
    const raw: unknown = JSON.parse(text);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function listNames(names: readonly string[]): string {
  return `${names.slice(0, 8).map((n) => shortenUntrusted(n)).join(', ')}${names.length > 8 ? ', ...' : ''}`;
}

/** The layer a parameter belongs to (model.layers.N. / transformer.h.N.), or null for embeddings and the final norm. */
function layerOf(name: string): number | null {
  const match = /^(?:model\.layers|transformer\.h)\.(\d+)\./.exec(name);
  return match === null ? null : Number(match[1]);
}

/** ' (vocab_size = 32000, hidden_size = 4096)': the config.json fields that give a shape's dimensions, when some do */
function fieldsBehind(config: ModelConfig, shape: readonly number[]): string {
  const named: string[] = [];
  for (const [key, value] of Object.entries(config.raw)) {
    if (typeof value === 'number' && shape.includes(value) && !named.some((n) => n.startsWith(`${key} `))) {
      named.push(`${key} = ${value}`);
    }
  }
  return named.length === 0 ? '' : ` (${named.slice(0, 4).join(', ')})`;
}

/**
 * Matches the weight files' tensors to the parameters the config implies, from the headers alone: every
 * parameter present once with its shape, nothing left over. Runs before anything is allocated, so a config that
 * claims more than the files hold (num_hidden_layers: 1000000) fails here, naming the field, instead of
 * allocating for it.
 */
function matchWeights(dir: string, configFile: string, config: ModelConfig, tensors: Map<string, TensorInfo>):
  Map<ParamSpec, TensorInfo> {
  const layout = paramLayout(config);
  const specs = new Map(layout.map((p) => [p.name, p]));
  const matched = new Map<ParamSpec, TensorInfo>();
  const unexpected: string[] = [];
  const tiedHead = config.tieWordEmbeddings ? 'lm_head.weight' : null;
  let layersInFiles = 0;
  for (const [fileName, info] of tensors) {
    const name = canonicalName(config, fileName);
    if (name === null || name === tiedHead) continue; // buffers, and a tied lm_head some checkpoints store anyway
    const layer = layerOf(name);
    if (layer !== null) layersInFiles = Math.max(layersInFiles, layer + 1);
    const spec = specs.get(name);
    if (spec === undefined) {
      unexpected.push(fileName);
      continue;
    }
    if (!sameShape(info.shape, spec.hfShape)) {
      throw new Error(`${info.file}: tensor ${quoteUntrusted(fileName)} has shape [${info.shape}] but ` +
        `config.json implies [${spec.hfShape}]${fieldsBehind(config, spec.hfShape)}; the weights do not match this config`);
    }
    if (matched.has(spec)) throw new Error(`${dir}: parameter '${name}' is stored twice (as ${quoteUntrusted(fileName)} and another name)`);
    matched.set(spec, info);
  }
  if (layersInFiles < config.numLayers) {
    const field = config.family === 'gpt2' ? 'n_layer' : 'num_hidden_layers';
    throw new Error(`${configFile}: '${field}' is ${config.numLayers} but the weights hold ${layersInFiles} layer(s); ` +
      `the config and the weights do not belong together`);
  }
  const missing = layout.filter((p) => !matched.has(p)).map((p) => p.name);
  if (missing.length > 0) {
    throw new Error(`${dir}: the weights lack ${missing.length} parameter(s) this ${config.modelType} config needs: ` +
      `${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  }
  if (unexpected.length > 0) {
    throw new Error(`${dir}: the weights hold ${unexpected.length} tensor(s) this ${config.modelType} config has no ` +
      `place for: ${listNames(unexpected)}; check model_type and the config options`);
  }
  return matched;
}

/**
 * Load a model folder. Every parameter must be present with the shape the config implies; that is checked
 * against the weight files' headers before any parameter or gradient is allocated.
 */
export async function loadModel(dir: string, opts: { kernels?: Kernels } = {}): Promise<DecoderBase> {
  const configFile = join(dir, 'config.json');
  const config = parseConfig(await readConfigJson(dir), configFile);
  const matched = matchWeights(dir, configFile, config, await listModelTensors(dir));
  const model = emptyModel(config, opts.kernels);
  for (const [planned, info] of matched) {
    const spec = model.spec(planned.name);
    const view = model.param(spec.name);
    if (spec.transposed) {
      const tmp = await readTensorF32(info);
      transpose2d(view, tmp, spec.hfShape[0], spec.hfShape[1]);
    } else {
      await readTensorF32(info, view);
    }
  }
  for (let i = 0; i < model.params.length; i++) {
    if (!Number.isFinite(model.params[i])) {
      const p = model.layout.find((s) => i >= s.offset && i < s.offset + s.size);
      throw new Error(`${dir}: parameter '${p?.name}' holds NaN or Inf; the checkpoint is corrupt`);
    }
  }
  return model;
}

/** Parameters in the layout save_pretrained writes (Conv1D transposed back; a tied head is not written). */
export function hfTensors(model: DecoderBase, source: Float32Array = model.params): NamedTensor[] {
  return hfLayoutTensors(model.layout, source);
}

/** Write config.json + weights; loads in Python transformers unchanged. */
export async function saveModel(model: DecoderBase, dir: string,
  opts: { dtype?: SafetensorsWriteDtype; maxShardBytes?: number } = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  await writeModelTensors(dir, hfTensors(model), { dtype, maxShardBytes: opts.maxShardBytes });
  const torchDtype = dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32';
  const raw = { ...model.config.raw, torch_dtype: torchDtype };
  await writeFileAtomically(join(dir, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
}

export { headParamName };
