// The browser build in Node: dist/web's bundle (no Node API inside, built here into a temporary folder) imported as
// an ES module, so these checks run the very graph the page runs: the build refuses a Node import, data held in
// memory gives `orpo data stats`' counts, a paused and resumed run ends bit for bit where an uninterrupted one does,
// and model folders go through bytes both ways (the page's download loads in Node; what saveModel writes, sharded
// or bfloat16, loads from bytes).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type * as BrowserBuild from '../src/browser.js';
import { jsKernels } from '../src/backend/js/kernels.js';
import { loadPreferencePairs, type DataStats } from '../src/data/dataset.js';
import { createTokenizer } from '../src/data/tokenizer.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { createModel } from '../src/model/create.js';
import { roundToBf16 } from '../src/tensor/dtype.js';
import { demoModelConfig, demoTokenizerFiles } from '../src/train/demo-task.js';
import { extractTo, unzipStored } from './web-unzip.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type BuildWeb = (opts?: { outdir?: string; entryPoints?: Record<string, string> }) => Promise<string>;
const TINY = { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 };

let work: string;
let buildWeb: BuildWeb;
let web: typeof BrowserBuild;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'orpo-web-session-'));
  ({ buildWeb } = await import(pathToFileURL(join(ROOT, 'scripts', 'build-web.mjs')).href) as { buildWeb: BuildWeb });
  await buildWeb({ outdir: join(work, 'bundle'), entryPoints: { orpo: 'src/browser.ts' } });
  web = await import(pathToFileURL(join(work, 'bundle', 'orpo.js')).href) as typeof BrowserBuild;
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the browser bundle holds no Node import, and a Node import reaching it fails the build', async () => {
  const bundle = await readFile(join(work, 'bundle', 'orpo.js'), 'utf8');
  assert.doesNotMatch(bundle, /\bfrom\s*["'](node:|fs|path|os|module|url)["']/);
  assert.doesNotMatch(bundle, /\brequire\(/);
  const entry = join(work, 'uses-node.ts');
  await writeFile(entry, "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n");
  await assert.rejects(buildWeb({ outdir: join(work, 'refused'), entryPoints: { bad: entry } }), /uses-node\.ts imports node:fs: the browser bundle must hold no Node API/);
});

const ROW = (prompt: string, chosen: string, rejected: string): string => `${JSON.stringify({ prompt, chosen, rejected })}\n`;
const ROWS = [
  ROW('12+07=', '019', '018'), ROW('33+41=', '074', '075'), ROW('50+50=', '100', '100'), // chosen equals rejected
  ROW('01+01=', '', '003'), // an empty response
  '{"prompt": "broken\n', // not JSON: counted under invalid with skip_invalid
  ROW('99+99=', '198', '189'), ROW('1+2=3+4=5+6=7+8=', '0015', '0016'), // a prompt cut to max_prompt_length
].join('');

function withoutFiles(stats: DataStats): Omit<DataStats, 'files' | 'invalidExamples'> & { invalid: number } {
  const { files: _files, invalidExamples, ...rest } = stats;
  return { ...rest, invalid: invalidExamples.length };
}

test('data given to the page as bytes (JSON Lines, gzip, a JSON array) gives the counts and pairs `orpo data stats` gives', async () => {
  const files = demoTokenizerFiles();
  const tokenizer = createTokenizer({ tokenizer: files['tokenizer.json']!, config: files['tokenizer_config.json']! });
  const path = join(work, 'rows.jsonl');
  await writeFile(path, ROWS);
  const node = await loadPreferencePairs(path, tokenizer, {
    maxLength: 16, maxPromptLength: 8, maxCompletionLength: null, truncationMode: 'keep_end', skipInvalid: true, columns: {},
  });
  assert.equal(node.stats.rowsUsed, 4);
  assert.ok(node.stats.truncated > 0 && node.stats.dropped.invalid === 1 && node.stats.dropped.chosen_equals_rejected === 1);
  const session = new web.BrowserSession();
  session.loadDemoModel(TINY, 1);
  const choices = { max_length: 16, max_prompt_length: 8, skip_invalid: true };
  const asArray = `[${ROWS.split('\n').filter((l) => l.startsWith('{"prompt":"')).join(',\n')}]`;
  for (const [name, bytes] of [['rows.jsonl', Buffer.from(ROWS)], ['rows.jsonl.gz', gzipSync(ROWS)]] as const) {
    const summary = await session.setDataFile('train', name, new Uint8Array(bytes), choices);
    assert.deepEqual(withoutFiles(summary.stats), withoutFiles(node.stats), name);
    assert.deepEqual(summary.preview[0], { prompt: '12+07=', chosen: '019', rejected: '018' });
  }
  const array = await session.setDataFile('train', 'rows.json', new TextEncoder().encode(asArray), choices);
  assert.equal(array.stats.rowsRead, 6);
  assert.equal(array.stats.rowsUsed, 4);
  // Parquet (and gzipped Parquet) from the bytes, through the same checked decoder as on Node
  const parquetRows = ROWS.split('\n').filter((l) => l.startsWith('{"prompt":"')).map((l) => JSON.parse(l) as Record<string, string>);
  const parquet = new Uint8Array(parquetWriteBuffer({
    columnData: ['prompt', 'chosen', 'rejected'].map((name) => ({ name, data: parquetRows.map((r) => r[name]!), type: 'STRING' as const })),
  }));
  const parquetPath = join(work, 'rows.parquet');
  await writeFile(parquetPath, parquet);
  const nodeParquet = await loadPreferencePairs(parquetPath, tokenizer, {
    maxLength: 16, maxPromptLength: 8, maxCompletionLength: null, truncationMode: 'keep_end', skipInvalid: true, columns: {},
  });
  for (const [name, bytes] of [['rows.parquet', parquet], ['rows.parquet.gz', new Uint8Array(gzipSync(parquet))]] as const) {
    const summary = await session.setDataFile('train', name, bytes, choices);
    assert.deepEqual(withoutFiles(summary.stats), withoutFiles(nodeParquet.stats), name);
    assert.equal(summary.stats.rowsUsed, nodeParquet.stats.rowsUsed);
  }
  const corrupt = parquet.slice();
  corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
  await assert.rejects(session.setDataFile('train', 'broken.parquet', corrupt.subarray(0, corrupt.length - 9), choices), /broken\.parquet/);
});

test('the page refuses invalid UTF-8 as `orpo train` does, naming the file and line, instead of reading U+FFFD', async () => {
  const session = new web.BrowserSession();
  session.loadDemoModel(TINY, 1);
  const good = new TextEncoder().encode('{"prompt":"12+07=","chosen":"019","rejected":"018"}\n');
  const bad = Uint8Array.from([...good, ...new TextEncoder().encode('{"prompt":"1'), 0xe9, ...new TextEncoder().encode('","chosen":"1","rejected":"2"}\n')]);
  const offset = bad.indexOf(0xe9);
  await assert.rejects(session.setDataFile('train', 'latin1.jsonl', bad, {}), new RegExp(`latin1\\.jsonl:2: not valid UTF-8 \\(byte 0xe9 at byte offset ${offset}\\)`));
});

test('a run paused and resumed in the page ends bit for bit where an uninterrupted one does', async () => {
  const choices = {
    method: 'orpo' as const, beta: 0.5, learning_rate: 5e-3, max_steps: 12, per_device_train_batch_size: 8, per_device_eval_batch_size: 25,
    warmup_ratio: 0.1, max_length: 16, max_prompt_length: 8, logging_steps: 4, seed: 3,
  };
  const run = async (pauseAt: number | null): Promise<{ params: Float32Array; sessions: number; eval: unknown }> => {
    const session = new web.BrowserSession();
    session.loadDemoModel(TINY, 2);
    await session.useDemoData(2, 200, 50, choices);
    let sessions = 0;
    let summary;
    do {
      sessions++;
      // pause in the first session only: a resume that restarted from step 0 must show as different weights, not loop
      const first = sessions === 1;
      summary = await session.train(choices, { progress: (p) => first && p.step === pauseAt && session.pause() });
      if (summary.paused) assert.equal(summary.steps, pauseAt);
    } while (summary.paused);
    assert.equal(summary.steps, 12);
    return { params: session.model.params.slice(), sessions, eval: summary.lastEval?.['eval_loss'] };
  };
  const straight = await run(null);
  const paused = await run(5);
  assert.equal(straight.sessions, 1);
  assert.equal(paused.sessions, 2);
  assert.ok(straight.params.some((v, i) => v !== createModel(demoModelConfig(TINY), { seed: 2, kernels: jsKernels }).params[i]), 'training moved the weights');
  assert.deepEqual(paused.params, straight.params);
  assert.equal(paused.eval, straight.eval);
});

test("the page's download (float32 and bfloat16) loads in Node with the page's weights", async () => {
  const session = new web.BrowserSession();
  session.loadDemoModel(TINY, 4);
  for (const dtype of ['F32', 'BF16'] as const) {
    const folder = await extractTo(unzipStored(session.modelZip(`model-${dtype}`, { dtype })), join(work, 'download'));
    const loaded = await loadModel(folder, { kernels: jsKernels });
    const expected = dtype === 'F32' ? session.model.params : session.model.params.map(roundToBf16);
    assert.deepEqual(loaded.params, expected, dtype);
  }
});

test('folders saveModel writes (sharded with an index, bfloat16) load from their bytes as loadModel loads them', async () => {
  const model = createModel({ ...demoModelConfig({ hiddenSize: 16, layers: 2, heads: 2, intermediateSize: 32 }), tie_word_embeddings: false }, { seed: 5, kernels: jsKernels });
  for (const [name, opts] of [['sharded', { maxShardBytes: 4096 }], ['bf16', { dtype: 'BF16' as const }]] as const) {
    const dir = join(work, name);
    await saveModel(model, dir, opts);
    const names = await readdir(dir);
    if (name === 'sharded') assert.ok(names.includes('model.safetensors.index.json') && names.filter((n) => n.endsWith('.safetensors')).length > 2, names.join(' '));
    const bytes = new Map(await Promise.all(names.map(async (n) => [n, new Uint8Array(await readFile(join(dir, n)))] as const)));
    const fromBytes = web.modelFromFolderBytes(bytes, { kernels: jsKernels });
    assert.deepEqual(fromBytes.params, (await loadModel(dir, { kernels: jsKernels })).params, name);
  }
  const broken = new Map([['config.json', new TextEncoder().encode(JSON.stringify(demoModelConfig(TINY)))], ['model.safetensors', new Uint8Array(16)]]);
  assert.throws(() => web.modelFromFolderBytes(broken), /model\.safetensors: header length is 0: the file is truncated or corrupt/);
});
