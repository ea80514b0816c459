// A reader of zip archives of stored entries (what the page's download is), written apart from src/web/zip.ts so that
// the tests check the writer against an independent reading of the format (PKWARE APPNOTE 4.3), CRC-32 included.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** The files of a zip archive of stored entries (what the page writes), read independently of src/web/zip.ts. */
export function unzipStored(zip: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const end = zip.length - 22;
  assert.equal(view.getUint32(end, true), 0x06054b50, 'the zip ends with an end-of-central-directory record');
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    assert.equal(view.getUint32(at, true), 0x02014b50, 'a central directory entry');
    assert.equal(view.getUint16(at + 10, true), 0, 'stored, not compressed');
    const crc = view.getUint32(at + 16, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extra = view.getUint16(at + 30, true);
    const comment = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(zip.subarray(at + 46, at + 46 + nameLength));
    assert.equal(view.getUint32(local, true), 0x04034b50, `${name}: a local header where the directory says`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = zip.subarray(start, start + size);
    assert.equal(bitwiseCrc32(data), crc, `${name}: CRC-32 matches`);
    files.set(name, data);
    at += 46 + nameLength + extra + comment;
  }
  return files;
}

function bitwiseCrc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

/** Writes the archive's files under dir; returns the folder they share (the zip's single top-level folder). */
export async function extractTo(files: ReadonlyMap<string, Uint8Array>, dir: string): Promise<string> {
  const tops = new Set([...files.keys()].map((name) => name.split('/')[0]!));
  assert.equal(tops.size, 1, 'one top-level folder in the zip');
  for (const [name, bytes] of files) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), bytes);
  }
  return join(dir, [...tops][0]!);
}
