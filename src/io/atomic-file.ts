// Crash-safe file replacement: write `<file>.tmp-<pid>`, fsync it, rename it over the target, fsync the
// directory. A reader (or a crash) sees either the old file or the complete new one, never a torn write —
// which matters for multi-GiB weight files and checkpoints written at the end of a long training run.

import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Calls `write` with a handle on a temporary file, then atomically moves it to `file`. */
export async function replaceFileAtomically(file: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    await write(handle);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(file));
}

/** Writes a whole (small) file atomically. */
export async function writeFileAtomically(file: string, data: string | Uint8Array): Promise<void> {
  await replaceFileAtomically(file, async (handle) => {
    await handle.writeFile(data);
  });
}

// Makes the rename itself durable. Some platforms/file systems cannot open or fsync a directory; the rename
// has still happened there, so that is not an error.
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // unsupported here (e.g. Windows, some network file systems)
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
