// Crash-safe file replacement: write `<file>.tmp-<pid>`, fsync it, rename it over the target, fsync the
// directory. A reader (or a crash) sees either the old file or the complete new one, never a torn write —
// which matters for multi-GiB weight files and checkpoints written at the end of a long training run.

import { copyFile, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** `<name>.tmp-<pid>`: the temporary a write in progress uses; a kill leaves it behind (see removeStaleTemporaryFiles) */
const TEMPORARY_FILE_RE = /\.tmp-(\d+)$/;

const temporaryOf = (file: string): string => `${file}.tmp-${process.pid}`;

/** Calls `write` with a handle on a temporary file, then atomically moves it to `file`. */
export async function replaceFileAtomically(file: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const tmp = temporaryOf(file);
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

/** Copies `from` to `to` atomically and durably: a copy to a temporary, fsynced, renamed over `to`. */
export async function copyFileAtomically(from: string, to: string): Promise<void> {
  const tmp = temporaryOf(to);
  try {
    await copyFile(from, tmp);
    const handle = await open(tmp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, to);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(to));
}

/** true when process `pid` exists (signal 0 only asks; EPERM means it exists under another user) */
export function processIsAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the `<name>.tmp-<pid>` files in `dir` that a killed writer left behind (its process is gone, or the pid is
 * this process's own, which has written nothing yet when this runs at start-up); a live writer's are kept. Returns
 * the names removed.
 */
export async function removeStaleTemporaryFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = TEMPORARY_FILE_RE.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && processIsAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
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
