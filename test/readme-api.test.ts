// The README's "Use it from TypeScript" example, run as a user would run it: the code block as an ES module that
// imports 'orpo-ts' (this package, through a node_modules link), in a folder holding a tokenizer and a preference
// file. It must make a model folder, train, log falling losses and save a loadable model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/shared.js';
import { arithmeticTask, demoTokenizerFiles } from '../src/train/demo-task.js';
import { loadModel } from '../src/io/hf-model.js';

test("the README's library example runs as written and the loss falls", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it from TypeScript'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code !== undefined, 'README has a ts block under "## Use it from TypeScript"');
  const dir = mkdtempSync(join(tmpdir(), 'orpo-readme-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(repoRoot, join(dir, 'node_modules', 'orpo-ts'), 'dir');
    mkdirSync(join(dir, 'tokenizer'));
    for (const [name, content] of Object.entries(demoTokenizerFiles())) writeFileSync(join(dir, 'tokenizer', name), JSON.stringify(content));
    const task = arithmeticTask(3, 200, 0);
    writeFileSync(join(dir, 'prefs.jsonl'), task.train.map((p) => JSON.stringify(p)).join('\n'));
    writeFileSync(join(dir, 'example.mjs'), code);
    const run = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines[0], '200 pairs');
    const losses = lines.slice(1).map((l) => (JSON.parse(l) as { loss: number }).loss);
    assert.equal(losses.length, 4);
    assert.ok(losses[3]! < losses[0]!, `loss fell: ${losses.join(' -> ')}`);
    const saved = await loadModel(join(dir, 'my-model-orpo'));
    assert.equal(saved.config.numLayers, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
