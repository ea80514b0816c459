// Hugging Face model folders in and out: config.json + safetensors (single or sharded, F32/F16/BF16) -> a model
// with its parameters in one flat buffer; and back, in the layout transformers' save_pretrained writes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kernels } from '../backend/kernels.js';
import { parseConfig } from '../model/config.js';
import { emptyModel } from '../model/create.js';
import type { DecoderBase } from '../model/base.js';
import { canonicalName, headParamName, hfLayoutTensors, transpose2d } from '../model/layout.js';
import { listModelTensors, writeModelTensors } from './model-files.js';
import { readTensorF32, type NamedTensor, type SafetensorsWriteDtype } from './safetensors.js';
import { writeFileAtomically } from './atomic-file.js';

export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`${file}: not found; a Hugging Face model folder needs config.json next to its safetensors weights`);
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

/** Load a model folder. Every parameter must be present with the shape the config implies. */
export async function loadModel(dir: string, opts: { kernels?: Kernels } = {}): Promise<DecoderBase> {
  let config;
  try {
    config = parseConfig(await readConfigJson(dir));
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
  const model = emptyModel(config, opts.kernels);
  const tensors = await listModelTensors(dir);
  const found = new Set<string>();
  const unexpected: string[] = [];
  const tiedHead = config.tieWordEmbeddings ? 'lm_head.weight' : null;
  for (const [fileName, info] of tensors) {
    const name = canonicalName(config, fileName);
    if (name === null || name === tiedHead) continue; // buffers, and a tied lm_head some checkpoints store anyway
    if (!model.hasParam(name)) {
      unexpected.push(fileName);
      continue;
    }
    const spec = model.spec(name);
    if (!sameShape(info.shape, spec.hfShape)) {
      throw new Error(`${info.file}: tensor '${fileName}' has shape [${info.shape}] but config.json implies ` +
        `[${spec.hfShape}]; the weights do not match this config`);
    }
    if (found.has(name)) throw new Error(`${dir}: parameter '${name}' is stored twice (as '${fileName}' and another name)`);
    found.add(name);
    const view = model.param(name);
    if (spec.transposed) {
      const tmp = await readTensorF32(info);
      transpose2d(view, tmp, spec.hfShape[0], spec.hfShape[1]);
    } else {
      await readTensorF32(info, view);
    }
  }
  const missing = model.layout.map((p) => p.name).filter((n) => !found.has(n));
  if (missing.length > 0) {
    throw new Error(`${dir}: the weights lack ${missing.length} parameter(s) this ${config.modelType} config needs: ` +
      `${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  }
  if (unexpected.length > 0) {
    throw new Error(`${dir}: the weights hold ${unexpected.length} tensor(s) this ${config.modelType} config has no ` +
      `place for: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}; check model_type and the config options`);
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
