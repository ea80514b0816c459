// Parquet rows through hyparquet, one row group at a time, with the checks hyparquet leaves out done first.
//
// hyparquet trusts the file: a page header missing a field sets its read offset to NaN, and DataView reads at NaN
// read byte 0 for ever (one flipped bit in a 1 KB file spins at 100% CPU); a column chunk whose path is not in the
// schema throws while its sibling columns' reads are in flight, and those reject with nobody awaiting them. So
// before any row group is decoded its metadata and every page header are checked against each other and the file:
// sizes and counts are non-negative integers, pages lie inside their chunk, page value counts add up to the
// chunk's, a flat column holds one value per row. Decoding then only ever sees offsets that are numbers inside
// the buffer, and the one error it can end with is wrapped with the file's name.
//
// This half holds no file system (a page reads Parquet from the bytes of a picked file); src/data/parquet.ts opens
// files and inflates gzip on Node.

import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, ColumnMetaData, FileMetaData, PageHeader, SchemaTree } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { compressors } from 'hyparquet-compressors';
import { DataError, briefly, type RowSource } from './errors.js';

const GiB = 1024 ** 3;

/** A page bigger than this is a corrupt header: writers cut pages at about 1 MB, and hyparquet allocates the size. */
const MAX_PAGE_BYTES = GiB;

/** The gzip magic number: .parquet.gz, or a .parquet that is gzipped anyway. */
export const isGzip = (head: Uint8Array): boolean => head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;

/** bytes in memory as the AsyncBuffer hyparquet reads */
export function memoryBuffer(bytes: Uint8Array): AsyncBuffer {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return { byteLength: buffer.byteLength, slice: (start, end) => buffer.slice(start, end) };
}

/** Thrown by the checks below; the caller adds the file (and the row group) to the message. */
class CorruptParquet extends Error {}

function count(value: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > max) {
    throw new CorruptParquet(`${what} is ${typeof value === 'bigint' || typeof value === 'number' ? String(value) : typeof value}`);
  }
  return n;
}

const CODECS = new Set(['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'BROTLI', 'LZ4', 'ZSTD', 'LZ4_RAW']);

/** The schema path of a column chunk, as hyparquet's getTreePath finds it, or an error instead of its throw. */
function leafOf(tree: SchemaTree, path: readonly unknown[]): SchemaTree {
  let node = tree;
  for (const part of path) {
    const child = node.children.find((c) => c.element.name === part);
    if (!child) throw new CorruptParquet(`column ${JSON.stringify(path.join('.')).slice(0, 80)} is not in the schema`);
    node = child;
  }
  if (node.children.length > 0) throw new CorruptParquet(`column ${path.join('.')} is not a leaf of the schema`);
  return node;
}

interface CheckedChunk {
  meta: ColumnMetaData;
  start: number;
  end: number;
  /** one value per row: a top-level column that is not repeated */
  flat: boolean;
}

/** The file's metadata against itself and the file's size: row counts, columns, chunk ranges. */
function checkMetadata(metadata: FileMetaData, byteLength: number): CheckedChunk[][] {
  let tree: SchemaTree;
  try {
    tree = parquetSchema(metadata);
  } catch (err) {
    throw new CorruptParquet(`the schema is broken (${briefly(err)})`);
  }
  const dataEnd = byteLength - 8 - count(metadata.metadata_length, 'the footer length');
  let rows = 0;
  const groups = metadata.row_groups.map((group, g) => {
    rows += count(group.num_rows, `row group ${g}'s row count`);
    if (!Array.isArray(group.columns) || group.columns.length === 0) throw new CorruptParquet(`row group ${g} has no columns`);
    return group.columns.map((column, c): CheckedChunk => {
      const meta = column.meta_data;
      const where = `row group ${g} column ${c}`;
      if (!meta || !Array.isArray(meta.path_in_schema)) throw new CorruptParquet(`${where} has no metadata`);
      const leaf = leafOf(tree, meta.path_in_schema);
      if (!CODECS.has(meta.codec)) throw new CorruptParquet(`${where} has an unknown compression codec`);
      const dataStart = count(meta.data_page_offset, `${where}'s data page offset`);
      const start = meta.dictionary_page_offset !== undefined && Number(meta.dictionary_page_offset) > 0
        ? count(meta.dictionary_page_offset, `${where}'s dictionary page offset`)
        : dataStart;
      const end = start + count(meta.total_compressed_size, `${where}'s size`);
      count(meta.num_values, `${where}'s value count`);
      if (start < 4 || end > dataEnd || dataStart < start || dataStart >= end) {
        throw new CorruptParquet(`${where} lies at bytes ${start}..${end}, outside the data (4..${dataEnd})`);
      }
      const flat = meta.path_in_schema.length === 1 && leaf.element.repetition_type !== 'REPEATED';
      return { meta, start, end, flat };
    });
  });
  if (rows !== count(metadata.num_rows, 'the row count')) {
    throw new CorruptParquet(`the row groups hold ${rows} rows but the footer says ${metadata.num_rows}`);
  }
  return groups;
}

/**
 * Every page header of one column chunk, read the way hyparquet will read them, checked: sizes are integers and
 * the page lies inside the chunk, value counts are integers that add up to the chunk's, level lengths fit their
 * page. hyparquet then never computes an offset from a missing field or reads past a page.
 */
function checkPages(bytes: ArrayBuffer, chunk: CheckedChunk, groupRows: number, where: string): void {
  const reader = { view: new DataView(bytes), offset: 0 };
  const chunkValues = Number(chunk.meta.num_values);
  let values = 0;
  while (reader.offset < bytes.byteLength - 1) {
    const at = reader.offset;
    let header: PageHeader;
    try {
      header = parquetHeader(reader);
    } catch (err) {
      throw new CorruptParquet(`${where}: the page header at byte ${at} of the chunk is broken (${briefly(err)})`);
    }
    const page = `${where}: the page at byte ${at} of the chunk`;
    const compressed = count(header.compressed_page_size, `${page}'s compressed size`, MAX_PAGE_BYTES);
    const uncompressed = count(header.uncompressed_page_size, `${page}'s size`, MAX_PAGE_BYTES);
    if (reader.offset + compressed > bytes.byteLength) throw new CorruptParquet(`${page} runs past the end of its chunk`);
    if (header.type === 'DATA_PAGE') {
      const h = header.data_page_header;
      if (!h || h.encoding === undefined) throw new CorruptParquet(`${page} has no data page header`);
      values += count(h.num_values, `${page}'s value count`, chunkValues);
    } else if (header.type === 'DATA_PAGE_V2') {
      const h = header.data_page_header_v2;
      if (!h || h.encoding === undefined) throw new CorruptParquet(`${page} has no data page header`);
      const n = count(h.num_values, `${page}'s value count`, chunkValues);
      count(h.num_nulls, `${page}'s null count`, n);
      count(h.num_rows, `${page}'s row count`, n);
      const levels = count(h.definition_levels_byte_length, `${page}'s definition levels length`) +
        count(h.repetition_levels_byte_length, `${page}'s repetition levels length`);
      if (levels > compressed || levels > uncompressed) throw new CorruptParquet(`${page}'s levels are longer than the page`);
      values += n;
    } else if (header.type === 'DICTIONARY_PAGE') {
      const h = header.dictionary_page_header;
      if (!h) throw new CorruptParquet(`${page} has no dictionary page header`);
      count(h.num_values, `${page}'s dictionary size`, 8 * uncompressed + 8);
    } else if (header.type !== 'INDEX_PAGE') {
      throw new CorruptParquet(`${page} has an unknown type`);
    }
    reader.offset += compressed;
  }
  if (values !== chunkValues) throw new CorruptParquet(`${where}: the pages hold ${values} values but the chunk says ${chunkValues}`);
  if (chunk.flat && values !== groupRows) throw new CorruptParquet(`${where}: ${values} values for ${groupRows} rows`);
}

/** Strings are decoded strictly: invalid UTF-8 is refused, as Python's readers refuse it, not turned into U+FFFD. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
class InvalidUtf8Value extends Error {}
const parsers = {
  stringFromBytes(bytes: Uint8Array | undefined): string | undefined {
    if (bytes === undefined) return undefined;
    try {
      return strictUtf8.decode(bytes);
    } catch {
      throw new InvalidUtf8Value('a string value is not valid UTF-8');
    }
  },
};

export interface ParquetRow {
  values: Record<string, unknown>;
  source: RowSource;
}

/** Rows of the Parquet file `path` held in `file` (read or in memory), one row group decoded at a time. */
export async function* parquetRowsOf(path: string, file: AsyncBuffer): AsyncGenerator<ParquetRow> {
  let metadata: FileMetaData;
  let groups: CheckedChunk[][];
  try {
    metadata = await parquetMetadataAsync(file);
    groups = checkMetadata(metadata, file.byteLength);
  } catch (err) {
    throw new DataError(`${path}: not a readable Parquet file (${briefly(err)})`);
  }
  let rowStart = 0;
  for (const [g, chunks] of groups.entries()) {
    const rowEnd = rowStart + Number(metadata.row_groups[g]!.num_rows);
    let rows: Record<string, unknown>[];
    try {
      for (const [c, chunk] of chunks.entries()) {
        checkPages(await file.slice(chunk.start, chunk.end), chunk, rowEnd - rowStart, `row group ${g} column ${c}`);
      }
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors, parsers });
    } catch (err) {
      const what = err instanceof CorruptParquet || err instanceof InvalidUtf8Value ? err.message : `cannot decode (${briefly(err)})`;
      throw new DataError(`${what} (in the row group of rows ${rowStart + 1}..${rowEnd})`, { file: path, row: rowStart });
    }
    for (const [i, values] of rows.entries()) yield { values, source: { file: path, row: rowStart + i } };
    rowStart = rowEnd;
  }
}
