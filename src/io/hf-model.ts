// Hugging Face model folders in and out: config.json + safetensors (single or sharded, F32/F16/BF16) -> a model
// with its parameters in one flat buffer; and back, in the layout transformers' save_pretrained writes.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kernels } from '../backend/kernels.js';
import { parseConfig } from '../model/config.js';
import { bf16Bits, emptyModel, setParam, widenModel } from '../model/create.js';
import type { DecoderBase } from '../model/base.js';
import type { ModelConfig, ParamSpec } from '../model/types.js';
import type { TensorInfo } from './safetensors-header.js';
import { headParamName, hfLayoutTensors, transpose2d, type WeightDtype } from '../model/layout.js';
import { listModelTensors, writeModelTensors } from './model-files.js';
import { matchWeights } from './weight-match.js';
import { readTensorBf16, readTensorF32, type NamedTensor, type SafetensorsWriteDtype } from './safetensors.js';
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


/**
 * Load a model folder. Every parameter must be present with the shape the config implies; that is checked
 * against the weight files' headers before any parameter or gradient is allocated. `weightDtype` bfloat16 keeps the
 * matrices in a frozen bfloat16 buffer (torch_dtype bfloat16, for LoRA): BF16 files are read byte for byte, others
 * rounded to nearest even; auto is bfloat16 when the files store the matrices in BF16 (transformers' "auto": the
 * checkpoint's dtype), else float32.
 */
export async function loadModel(dir: string,
  opts: { kernels?: Kernels; weightDtype?: WeightDtype | 'auto' } = {}): Promise<DecoderBase> {
  const configFile = join(dir, 'config.json');
  const config = parseConfig(await readConfigJson(dir), configFile);
  const matched = matchWeights(dir, configFile, config, await listModelTensors(dir));
  const weightDtype = opts.weightDtype === 'auto' ? autoWeightDtype(matched) : opts.weightDtype ?? 'float32';
  const model = emptyModel(config, opts.kernels, 'float32', weightDtype);
  for (const [planned, info] of matched) {
    const spec = model.spec(planned.name);
    if (spec.transposed) {
      const tmp = await readTensorF32(info);
      // (a bfloat16 matrix is transposed in float32 first, then rounded into place)
      const internal = spec.bf16 ? new Float32Array(spec.size) : model.param(spec.name);
      transpose2d(internal, tmp, spec.hfShape[0], spec.hfShape[1]);
      if (spec.bf16) setParam(model, spec.name, internal);
    } else if (spec.bf16) {
      await readTensorBf16(info, bf16Bits(model, spec.name));
    } else {
      await readTensorF32(info, model.param(spec.name));
    }
  }
  const bad = firstNonFinite(model);
  if (bad !== null) throw new Error(`${dir}: parameter '${bad}' holds NaN or Inf; the checkpoint is corrupt`);
  return model;
}

/** transformers' "auto": bfloat16 when the weight files store the matrices in BF16, else float32 */
function autoWeightDtype(matched: ReadonlyMap<ParamSpec, TensorInfo>): WeightDtype {
  return [...matched].some(([p, info]) => p.shape.length === 2 && info.dtype === 'BF16') ? 'bfloat16' : 'float32';
}

/**
 * The dtype loadModel(dir, { weightDtype }) would hold the matrices in, from the weight files' headers alone (no
 * tensor is read): what `orpo train --dry-run` plans for `--torch-dtype auto`. `config` is the folder's, parsed.
 */
export async function resolveWeightDtype(dir: string, config: ModelConfig, weightDtype: WeightDtype | 'auto'): Promise<WeightDtype> {
  if (weightDtype !== 'auto') return weightDtype;
  return autoWeightDtype(matchWeights(dir, join(dir, 'config.json'), config, await listModelTensors(dir)));
}

/** the name of the first parameter holding NaN or Inf (float32 or bfloat16), or null */
export function firstNonFinite(model: DecoderBase): string | null {
  for (const p of model.layout) {
    if (p.bf16) {
      // a bfloat16 value is NaN or Inf exactly when its 8 exponent bits are all ones
      const bits = bf16Bits(model, p.name);
      for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7f80) === 0x7f80) return p.name;
    } else {
      const v = model.param(p.name);
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return p.name;
    }
  }
  return null;
}

/** Parameters in the layout save_pretrained writes (Conv1D transposed back; a tied head is not written). */
export function hfTensors(model: DecoderBase, source: Float32Array = model.params): NamedTensor[] {
  // a bfloat16 base is widened first (its values exactly), so it saves like any model
  if (model.frozen && source === model.params) {
    const wide = widenModel(model);
    return hfLayoutTensors(wide.layout, wide.params);
  }
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
