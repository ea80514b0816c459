// What the command-line tests of training share: a temporary folder holding a tiny demo model and arithmetic
// preference data (made before the file's tests, removed after them), and `orpo` run as a user runs it.
import { before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDemoData, writeDemoModelFolder } from '../../src/cli/demo.js';
import { arithmeticTask } from '../../src/train/demo-task.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface TinyCliRun {
  root: string;
  modelDir: string;
  /** filled in before the tests run: 40 training and 8 held-out pairs */
  data: { train: string; eval: string };
}

/** Call at a test file's top level: the fixture exists while the file's tests run. */
export function tinyCliRun(prefix: string): TinyCliRun {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const fixture: TinyCliRun = { root, modelDir: join(root, 'model'), data: { train: '', eval: '' } };
  before(async () => {
    await writeDemoModelFolder(fixture.modelDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 4);
    // filled in place, so that a destructured `data` sees the files too
    Object.assign(fixture.data, await writeDemoData(join(root, 'data'), arithmeticTask(9, 40, 8)));
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  return fixture;
}

/** `orpo ARGS` in a child process (two minutes at most). */
export function orpo(args: readonly string[], env: Record<string, string> = {}): { code: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}
