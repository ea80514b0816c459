// The weight files of a Hugging Face model folder, named exactly as transformers' save_pretrained names them:
// one `model.safetensors`, or shards `model-00001-of-00003.safetensors` ... listed by
// `model.safetensors.index.json` = {metadata: {total_size}, weight_map: {tensor name: shard file}}.

import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { writeFileAtomically } from './atomic-file.js';
import {
  describeUntrusted, quoteUntrusted, readSafetensorsHeader, SAFETENSORS_DTYPE_BYTES, writeSafetensors,
  type NamedTensor, type SafetensorsWriteDtype, type TensorInfo,
} from './safetensors.js';

export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** transformers' default max_shard_size "5GB" (decimal gigabytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const SHARD_FILE = /^model-\d{5}-of-\d{5}\.safetensors$/;
// The largest index a real model needs is a few MB (DeepSeek-V3's 91,000 tensors: 8 MB); anything far larger is
// refused before it is read into one string.
const MAX_INDEX_BYTES = 64 << 20;

function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index)}-of-${pad(count)}.safetensors`;
}

// The longest file name Linux, macOS and Windows file systems hold (NAME_MAX); longer ones fail with a bare error.
const MAX_FILE_NAME_BYTES = 255;

/**
 * A shard is named by a plain file name in the model folder: no path (which could point outside it), not '.' or
 * '..' (the folder itself or its parent), no NUL and not over NAME_MAX (which the file system APIs refuse with
 * a bare error).
 */
function isPlainFileName(name: unknown): name is string {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && basename(name) === name &&
    !/[/\\\0]/.test(name) && Buffer.byteLength(name) <= MAX_FILE_NAME_BYTES;
}

async function fileKind(path: string): Promise<'file' | 'missing' | 'folder' | 'special file'> {
  try {
    const stats = await stat(path);
    return stats.isFile() ? 'file' : stats.isDirectory() ? 'folder' : 'special file';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Every tensor of a model folder: `model.safetensors` (preferred, as transformers does), or the shards listed
 * in `model.safetensors.index.json`, merged into one map.
 */
export async function listModelTensors(dir: string): Promise<Map<string, TensorInfo>> {
  const single = join(dir, SINGLE_WEIGHTS_FILE);
  if (await exists(single)) return (await readSafetensorsHeader(single)).tensors;
  const indexFile = join(dir, WEIGHTS_INDEX_FILE);
  if (await exists(indexFile)) return listShardedTensors(dir, indexFile);

  let files: string[];
  try {
    files = (await readdir(dir)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${dir}: model folder does not exist`);
    throw error;
  }
  const shown = files.length === 0 ? 'it is empty' : `it has ${files.slice(0, 20).join(', ')}${files.length > 20 ? ', ...' : ''}`;
  throw new Error(`${dir}: no ${SINGLE_WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} (${shown}). Only safetensors weights ` +
    `are supported, not PyTorch .bin pickles: convert the model in Python with ` +
    `model.save_pretrained(dir, safe_serialization=True)`);
}

async function listShardedTensors(dir: string, indexFile: string): Promise<Map<string, TensorInfo>> {
  const weightMap = await readWeightMap(indexFile);
  const shardNames = [...new Set(weightMap.values())].sort();
  const tensors = new Map<string, TensorInfo>();
  for (const shardName of shardNames) {
    const shard = join(dir, shardName);
    const kind = await fileKind(shard);
    if (kind !== 'file') {
      const problem = kind === 'missing' ? `which is missing from ${dir}` : `which is not a file in ${dir} but a ${kind}`;
      throw new Error(`${indexFile}: lists shard ${quoteUntrusted(shardName)}, ${problem}; re-download or re-save the model`);
    }
    for (const [name, info] of (await readSafetensorsHeader(shard)).tensors) {
      const other = tensors.get(name);
      if (other !== undefined) {
        throw new Error(`${dir}: tensor ${quoteUntrusted(name)} is in both ${basename(other.file)} and ${shardName}; re-save the model`);
      }
      tensors.set(name, info);
    }
  }
  for (const [name, shardName] of weightMap) {
    const info = tensors.get(name);
    if (info === undefined || basename(info.file) !== shardName) {
      throw new Error(`${indexFile}: tensor ${quoteUntrusted(name)} is listed in ${shardName} but that shard does not hold it; ` +
        `the index and shards do not match, re-download or re-save the model`);
    }
  }
  return tensors;
}

async function readWeightMap(indexFile: string): Promise<Map<string, string>> {
  const stats = await stat(indexFile);
  if (!stats.isFile()) throw new Error(`${indexFile}: is not a regular file (a folder, pipe or device?)`);
  const size = stats.size;
  if (size > MAX_INDEX_BYTES) {
    throw new Error(`${indexFile}: is ${size} bytes, more than the ${MAX_INDEX_BYTES} an index of any real model needs; ` +
      `re-download or re-save the model`);
  }
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexFile, 'utf8'));
  } catch (error) {
    throw new Error(`${indexFile}: not valid JSON (${(error as Error).message}); re-download or re-save the model`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexFile}: has no "weight_map" object; re-download or re-save the model`);
  }
  const result = new Map<string, string>();
  for (const [name, shardName] of Object.entries(weightMap)) {
    if (!isPlainFileName(shardName)) {
      throw new Error(`${indexFile}: weight_map entry for ${quoteUntrusted(name)} is ${describeUntrusted(shardName)}, ` +
        `not a file name in the model folder`);
    }
    result.set(name, shardName);
  }
  return result;
}

/**
 * Groups tensors into shards the way huggingface_hub's split_state_dict_into_shards does: in the given order,
 * start a new shard when the next tensor would push the current one past maxShardBytes; a tensor larger than
 * that gets a shard of its own.
 */
function planShards(tensors: NamedTensor[], elementBytes: number, maxShardBytes: number): NamedTensor[][] {
  const shards: NamedTensor[][] = [];
  let current: NamedTensor[] = [];
  let currentBytes = 0;
  for (const tensor of tensors) {
    const bytes = tensor.data.length * elementBytes;
    if (bytes > maxShardBytes) {
      shards.push([tensor]);
      continue;
    }
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(tensor);
    currentBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/**
 * Writes the weights of a model folder: `model.safetensors`, or when they do not fit one shard of
 * maxShardBytes (default 5 GB, transformers' "5GB"), shards plus `model.safetensors.index.json`. Weight files
 * of a previous save that the new one does not use are removed afterwards, so the folder never mixes two saves.
 */
export async function writeModelTensors(
  dir: string,
  tensors: NamedTensor[],
  opts: { dtype?: SafetensorsWriteDtype; maxShardBytes?: number } = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0)) throw new Error(`writeModelTensors: maxShardBytes must be positive, got ${maxShardBytes}`);
  const seen = new Set<string>();
  for (const { name } of tensors) {
    if (seen.has(name)) throw new Error(`${dir}: tensor '${name}' appears twice in the weights to save`);
    seen.add(name);
  }
  await mkdir(dir, { recursive: true });

  const elementBytes = SAFETENSORS_DTYPE_BYTES[dtype];
  const shards = planShards(tensors, elementBytes, maxShardBytes);
  const written = new Set<string>();
  if (shards.length <= 1) {
    // like transformers, one shard is saved as the plain file even when a single tensor exceeds the limit
    await writeSafetensors(join(dir, SINGLE_WEIGHTS_FILE), tensors, { dtype });
    written.add(SINGLE_WEIGHTS_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < shards.length; i++) {
      const shardName = shardFileName(i + 1, shards.length);
      await writeSafetensors(join(dir, shardName), shards[i]!, { dtype });
      written.add(shardName);
      for (const { name } of shards[i]!) weightMap[name] = shardName;
    }
    const totalBytes = tensors.reduce((sum, t) => sum + t.data.length * elementBytes, 0);
    // sorted keys, 2-space indent: what transformers writes
    const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((name) => [name, weightMap[name]!]));
    const index = { metadata: { total_size: totalBytes }, weight_map: sortedMap };
    await writeFileAtomically(join(dir, WEIGHTS_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
    written.add(WEIGHTS_INDEX_FILE);
  }

  for (const name of await readdir(dir)) {
    const isWeightFile = name === SINGLE_WEIGHTS_FILE || name === WEIGHTS_INDEX_FILE || SHARD_FILE.test(name);
    if (isWeightFile && !written.has(name)) await unlink(join(dir, name));
  }
}

const SIZE_UNITS: Record<string, number> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
};

/**
 * A shard size as transformers' `max_shard_size` spells it: a byte count, or "5GB" / "500MB" (powers of 10)
 * / "2GiB" (powers of 2). Also accepts "5gb" and "1.5GB" (rounded down to whole bytes).
 */
export function parseShardSize(size: string | number): number {
  if (typeof size === 'number') {
    if (Number.isSafeInteger(size) && size > 0) return size;
    throw new Error(`max shard size must be a positive whole number of bytes, got ${size}`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(size);
  const unit = match === null ? undefined : SIZE_UNITS[match[2] === '' ? 'B' : match[2]!.toUpperCase()];
  const bytes = match === null || unit === undefined ? NaN : Math.floor(Number(match[1]) * unit);
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) {
    throw new Error(`max shard size '${size}' is not a size like 5GB, 500MB, 2GiB or a byte count`);
  }
  return bytes;
}
