// Parquet files on Node: opened, or inflated when gzipped, then decoded by parquet-decode.ts (one row group at a
// time, with the checks hyparquet leaves out done first).

import { constants as bufferConstants } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { totalmem } from 'node:os';
import { createGunzip } from 'node:zlib';
import { asyncBufferFromFile } from 'hyparquet';
import type { AsyncBuffer } from 'hyparquet';
import { DataError, briefly } from './errors.js';
import { isGzip, memoryBuffer, parquetRowsOf, type ParquetRow } from './parquet-decode.js';

export type { ParquetRow } from './parquet-decode.js';

export interface ParquetLimits {
  /** a gzipped Parquet file is inflated into memory (Parquet is read from its footer); more than this is refused */
  maxInflatedBytes: number;
}

const GiB = 1024 ** 3;

/**
 * What a gzipped Parquet file may inflate to: it must be held whole, so a quarter of the machine's memory (a
 * bit-for-bit copy is made on the way), never more than 2 GiB, and never more than a Buffer can be.
 */
export const DEFAULT_PARQUET_LIMITS: ParquetLimits = {
  maxInflatedBytes: Math.min(2 * GiB, Math.floor(totalmem() / 4), bufferConstants.MAX_LENGTH),
};

const describeBytes = (n: number): string => (n >= GiB ? `${(n / GiB).toFixed(1)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`);

/** Inflates a gzipped file into memory, stopping as soon as it passes the limit instead of after. */
async function inflateBounded(path: string, limit: number): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let total = 0;
  const input = createReadStream(path);
  const gunzip = createGunzip();
  try {
    for await (const part of input.pipe(gunzip)) {
      total += (part as Buffer).length;
      if (total > limit) {
        throw new DataError(
          `${path}: inflates to more than ${describeBytes(limit)}, more than a gzipped Parquet file can be held in ` +
            'memory to be read (Parquet is read from its end, so gzip must be undone whole first); gunzip it and ' +
            'read the .parquet, which is read one row group at a time',
        );
      }
      parts.push(part as Buffer);
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${path}: cannot be inflated (${briefly(err)}); is the gzip file complete?`);
  } finally {
    input.destroy();
    gunzip.destroy();
  }
  return Buffer.concat(parts, total);
}

async function openParquet(path: string, limits: ParquetLimits): Promise<AsyncBuffer> {
  const file = await asyncBufferFromFile(path);
  const head = new Uint8Array(await file.slice(0, Math.min(2, file.byteLength)));
  return isGzip(head) ? memoryBuffer(await inflateBounded(path, limits.maxInflatedBytes)) : file;
}

/** Rows of a Parquet file (gzipped or not) with their row numbers, one row group in memory at a time. */
export async function* parquetRows(path: string, limits: ParquetLimits = DEFAULT_PARQUET_LIMITS): AsyncGenerator<ParquetRow> {
  yield* parquetRowsOf(path, await openParquet(path, limits));
}
