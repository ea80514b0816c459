// Strict UTF-8 for data files. TextDecoder's default turns invalid bytes into U+FFFD without a word, so a file in
// Latin-1 or a corrupt one trains on replacement characters; Python's readers (json, datasets) refuse it and say
// where. TextDecoder's fatal mode refuses but does not say where, so the position is found here when it does.

/** Where a byte sequence stops being valid UTF-8. */
export interface Utf8Scan {
  /** index of the first byte that cannot start or continue a character, or -1 */
  invalidAt: number;
  /** index where a character begins that the bytes end before finishing (length when none) */
  incompleteFrom: number;
}

/** The rules of the Unicode standard's table 3-7 (no overlongs, no surrogates, nothing past U+10FFFF). */
export function scanUtf8(bytes: Uint8Array): Utf8Scan {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else return { invalidAt: i, incompleteFrom: n };
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return { invalidAt: -1, incompleteFrom: i };
      const c = bytes[i + k]!;
      if (k === 1 ? c < low || c > high : c < 0x80 || c > 0xbf) return { invalidAt: i, incompleteFrom: n };
    }
    i += need + 1;
  }
  return { invalidAt: -1, incompleteFrom: n };
}

/** Where a character cut by the end of a chunk begins (the chunk's length when none is): at most 3 bytes back. */
export function incompleteTail(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back]!;
    if (b >= 0x80 && b < 0xc0) continue; // a continuation byte: the lead is further back
    const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return length > back ? n - back : n;
  }
  return n;
}

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of bytes holding whole characters, or the index of the first invalid byte. */
export function decodeStrict(bytes: Uint8Array): { text: string } | { invalidAt: number } {
  try {
    return { text: fatal.decode(bytes) };
  } catch {
    const { invalidAt, incompleteFrom } = scanUtf8(bytes);
    return { invalidAt: invalidAt >= 0 ? invalidAt : incompleteFrom };
  }
}

const hex = (b: number | undefined): string => (b === undefined ? 'end of data' : `0x${b.toString(16).padStart(2, '0')}`);

/** "byte 0xff at byte offset 1234": Python says "can't decode byte 0xff in position 1234". */
export function describeInvalidByte(bytes: Uint8Array, at: number, fileOffset: number): string {
  return `not valid UTF-8 (byte ${hex(bytes[at])} at byte offset ${fileOffset}); save the file as UTF-8`;
}
