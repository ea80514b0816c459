// Row readers for the files preference data comes in: JSON Lines, JSON (an array, or an object holding one) and
// Parquet, each optionally gzip-compressed, or a folder of them such as a Hugging Face dataset snapshot
// (data/train-00000-of-00001.parquet) from which one split is taken. Rows are yielded one at a time: JSON Lines
// stream line by line and Parquet row group by row group, so files larger than memory can be read.
// A row that cannot be parsed is yielded as an InvalidRow, so the caller decides between stopping and counting.
// This module finds and opens the files; the JSON and JSON Lines rules live in json-rows.ts (no file system),
// which the page's reader of picked files (src/web/memory-readers.ts) shares.

import { constants as bufferConstants } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { createGunzip } from 'node:zlib';
import { DataError, briefly, type RowSource } from './errors.js';
import { DEFAULT_MAX_ROW_LENGTH, formatOf, readJson, readJsonLines, type ByteChunks, type JsonLimits, type ReadItem } from './json-rows.js';
import { DEFAULT_PARQUET_LIMITS, parquetRows, type ParquetLimits } from './parquet.js';

export { formatOf, isInvalid, type DataFileFormat, type InvalidRow, type RawRow, type ReadItem } from './json-rows.js';

const { MAX_STRING_LENGTH } = bufferConstants;

/** Files that sit next to data in dataset folders but hold metadata, not rows. */
const METADATA_FILES = new Set(['dataset_info.json', 'dataset_infos.json', 'state.json', 'dataset_dict.json']);

async function listDataFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue; // .git, .cache, .gitattributes
      const path = join(d, entry.name);
      if (entry.isDirectory() && depth < 4) await walk(path, depth + 1);
      else if (entry.isFile() && formatOf(entry.name) && !METADATA_FILES.has(entry.name)) found.push(path);
    }
  };
  await walk(dir, 0);
  return found.sort();
}

/** The split a file's name gives: what comes before the first - or . (train-00000-of-00002.parquet, test.jsonl). */
const splitNameOf = (file: string): string => basename(file).split(/[-.]/)[0]!;

/** Hugging Face's naming: a file is in split S when its name says S or a folder on its path is named S. */
function inSplit(root: string, file: string, split: string): boolean {
  return splitNameOf(file) === split || relative(root, file).split(sep).slice(0, -1).includes(split);
}

/** Names that mean a held-out split, so a folder holding them is not one undivided split. */
const HELD_OUT_SPLITS = /^(test|testing|eval|evaluation|valid|validation|val|dev)(_.*)?$/;

/** A data file, or the files of one split of a dataset folder (train when no split is given and there is one). */
export async function resolveDataFiles(path: string, split?: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new DataError(`dataset ${path} not found`);
  }
  if (!info.isDirectory()) {
    if (!formatOf(path)) {
      throw new DataError(`${path}: unknown dataset format; use .jsonl, .json or .parquet (optionally .gz)`);
    }
    return [path];
  }
  const files = await listDataFiles(path);
  if (files.length === 0) throw new DataError(`${path}: no .jsonl, .json or .parquet files in this folder`);
  const chosen = files.filter((f) => inSplit(path, f, split ?? 'train'));
  if (chosen.length > 0) return chosen;
  const names = [...new Set(files.map(splitNameOf))].sort();
  // a folder of files without split names is one split; one with test/validation files needs a choice
  if (split === undefined && !names.some((n) => HELD_OUT_SPLITS.test(n))) return files;
  throw new DataError(
    `${path}: no files for split "${split ?? 'train'}"; choose one of ${names.join(', ')} with --dataset-split ` +
      `(files: ${files.map((f) => relative(path, f)).join(', ')})`,
  );
}

export interface ReadLimits extends ParquetLimits {
  /** a JSON Lines line or one element of a JSON array longer than this (bytes; characters for arrays) is an invalid row */
  maxRowLength: number;
}

/** 128 MiB for one row (json-rows.ts says why), and Parquet's bounds. */
export const DEFAULT_READ_LIMITS: ReadLimits = { ...DEFAULT_PARQUET_LIMITS, maxRowLength: DEFAULT_MAX_ROW_LENGTH };

/** The bytes of a file, inflated on the way when it starts with gzip's magic number; failures name the file. */
async function* fileBytes(path: string, where: () => RowSource = () => ({ file: path })): AsyncGenerator<Buffer> {
  const gzipped = await startsWithGzipMagic(path);
  const raw = createReadStream(path);
  const input = gzipped ? raw.pipe(createGunzip()) : raw;
  try {
    for await (const chunk of input) yield chunk as Buffer;
  } catch (err) {
    throw new DataError(`cannot read (${briefly(err)})${gzipped ? '; is the gzip file complete?' : ''}`, where());
  } finally {
    input.destroy();
    raw.destroy();
  }
}

async function startsWithGzipMagic(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** Every row of a data file or of one split of a dataset folder, in file order. */
export async function* readRows(path: string, opts: { split?: string; limits?: Partial<ReadLimits> } = {}): AsyncGenerator<ReadItem> {
  const limits = { ...DEFAULT_READ_LIMITS, ...opts.limits };
  const json: JsonLimits = { maxRowLength: limits.maxRowLength, maxStringLength: MAX_STRING_LENGTH };
  for (const file of await resolveDataFiles(path, opts.split)) {
    const kind = formatOf(file)!;
    const chunks: ByteChunks = (where) => fileBytes(file, where);
    if (kind.format === 'jsonl') yield* readJsonLines(file, chunks, json);
    else if (kind.format === 'json') yield* readJson(file, chunks, opts.split, json);
    else yield* parquetRows(file, limits);
  }
}
