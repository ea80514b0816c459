// A store-only (uncompressed) zip writer: enough to hand a model folder to the user as one download. Safetensors
// weights barely compress, so deflate would cost time for little; every unzip tool and Python's zipfile read
// stored entries. Layout (PKWARE APPNOTE 4.3): per file a local header + the bytes, then the central directory
// and its end record. No zip64: an archive, or one file, of 4 GiB or more is refused.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zip and gzip use). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const ZIP32_LIMIT = 0xffffffff;
const UTF8_NAMES = 0x0800; // general purpose flag bit 11: names are UTF-8
// 1980-01-01 00:00, the earliest DOS time: a fixed stamp keeps the archive a function of its contents only
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** A zip archive of `files` (name -> bytes), in the given order, stored without compression. */
export function zipStore(files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const encoder = new TextEncoder();
  const entries = [...files].map(([name, data]) => ({ name: encoder.encode(name), data, crc: crc32(data), offset: 0 }));
  if (entries.length > 0xffff) throw new Error(`zip: ${entries.length} files, more than a zip without zip64 holds`);
  let size = 22;
  for (const e of entries) {
    if (e.data.length >= ZIP32_LIMIT) throw new Error(`zip: a file of ${e.data.length} bytes needs zip64, which this writer does not write`);
    size += 30 + e.name.length + e.data.length + 46 + e.name.length;
  }
  if (size >= ZIP32_LIMIT) throw new Error(`zip: ${size} bytes in all needs zip64, which this writer does not write`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  const u16 = (v: number): void => { view.setUint16(at, v, true); at += 2; };
  const u32 = (v: number): void => { view.setUint32(at, v, true); at += 4; };
  const bytes = (b: Uint8Array): void => { out.set(b, at); at += b.length; };
  // version needed 2.0, flags, method 0 (stored), time, date, crc, compressed and plain sizes, name length
  const common = (e: (typeof entries)[number]): void => {
    u16(20); u16(UTF8_NAMES); u16(0); u16(DOS_TIME); u16(DOS_DATE); u32(e.crc); u32(e.data.length); u32(e.data.length); u16(e.name.length);
  };
  for (const e of entries) {
    e.offset = at;
    u32(0x04034b50); common(e); u16(0); bytes(e.name); bytes(e.data);
  }
  const directoryStart = at;
  for (const e of entries) {
    // made by 2.0, then the common fields, extra/comment lengths, disk, internal and external attributes, offset
    u32(0x02014b50); u16(20); common(e); u16(0); u16(0); u16(0); u16(0); u32(0); u32(e.offset); bytes(e.name);
  }
  const directorySize = at - directoryStart;
  u32(0x06054b50); u16(0); u16(0); u16(entries.length); u16(entries.length); u32(directorySize); u32(directoryStart); u16(0);
  return out;
}
