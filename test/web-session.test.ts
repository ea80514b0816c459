// The browser build in Node: dist/web's bundle (no Node API inside, built here into a temporary folder) imported as
// an ES module, so these checks run the very graph the page runs: the build refuses a Node import, data held in
// memory gives `orpo data stats`' counts, a paused and resumed run ends bit for bit where an uninterrupted one does,
// and model folders go through bytes both ways (the page's download loads in Node; what saveModel writes, sharded
// or bfloat16, loads from bytes). A training backend (the page's WebGPU path) trains a copy and gives the host
// run's numbers; the page names what keeps it off WebGPU.
/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type * as BrowserBuild from '../src/browser.js';
import { jsKernels } from '../src/backend/js/kernels.js';
import { writeDemoData, writeDemoModelFolder } from '../src/cli/demo.js';
import { loadPreferencePairs, type DataStats } from '../src/data/dataset.js';
import { createTokenizer } from '../src/data/tokenizer.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { createModel } from '../src/model/create.js';
import { roundToBf16 } from '../src/tensor/dtype.js';
import { arithmeticTask, demoModelConfig, demoTokenizerFiles } from '../src/train/demo-task.js';
import { exportModelFolderToGguf } from '../src/io/gguf/export.js';
import { sharedDir, SHARED_MISSING } from './helpers/shared.js';
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

test('a training backend trains a copy of the model: the host run\'s numbers, also paused on one backend and resumed on the other (full, LoRA with dropout, DPO)', async () => {
  // the page's WebGPU path (src/web/device.ts) with a second TypeScript backend as the "device": the copy, the
  // weights and adapters coming back, AdamW's moments and LoRA's dropout counters across a pause, and DPO's
  // reference on the device, checked bit for bit against the host run (the GPU's own numbers: web-webgpu.test.ts)
  const events: string[] = [];
  const copy: BrowserBuild.TrainingBackend = {
    name: 'copy',
    open: () => {
      events.push('open');
      // another object over the same kernels, so that nothing takes the copy for the host (DPO's reference moves too)
      const kernels = Object.create(web.jsKernels) as BrowserBuild.OpenedBackend<unknown, unknown>['kernels'];
      return Promise.resolve({ name: 'js copy', kernels, release: () => void events.push('release') });
    },
  };
  const base = {
    beta: 0.5, learning_rate: 5e-3, max_steps: 10, per_device_train_batch_size: 8, per_device_eval_batch_size: 25,
    warmup_ratio: 0.1, max_length: 16, max_prompt_length: 8, logging_steps: 2, eval_steps: 5, seed: 3,
  };
  const cases = {
    orpo: { ...base, method: 'orpo' as const },
    'dpo (frozen reference)': { ...base, method: 'dpo' as const, beta: 0.1 },
    'dpo + LoRA with dropout': { ...base, method: 'dpo' as const, beta: 0.1, lora_r: 4, lora_alpha: 8, lora_dropout: 0.2 },
  };
  type Backends = readonly (BrowserBuild.TrainingBackend | null)[];
  const run = async (choices: BrowserBuild.TrainChoices, backends: Backends, pauseAt: number | null) => {
    const session = new web.BrowserSession();
    session.loadDemoModel(TINY, 5);
    // the counts only (eval_steps is refused until the held-out file is in)
    await session.useDemoData(5, 120, 30);
    const records: Record<string, number>[] = [];
    const names: string[] = [];
    let summary;
    let call = 0;
    do {
      session.trainingBackend = backends[call] ?? null;
      const first = call++ === 0;
      summary = await session.train(choices, { log: (r) => records.push(r), progress: (p) => first && p.step === pauseAt && session.pause() });
      names.push(summary.backend);
    } while (summary.paused);
    const adapter = summary.lora === null ? null : unzipStored(session.adapterZip('a')).get('a/adapter_model.safetensors');
    return { records: records.map(withoutTimings), params: session.model.params.slice(), adapter, names, logits: session.promptLogits('12+07=').logits };
  };
  for (const [name, choices] of Object.entries(cases)) {
    events.length = 0;
    const host = await run(choices, [null], null);
    const device = await run(choices, [copy], null);
    assert.deepEqual(events, ['open', 'release'], `${name}: one device per train() call, given back`);
    const deviceThenHost = await run(choices, [copy, null], 4);
    const hostThenDevice = await run(choices, [null, copy], 6);
    assert.deepEqual([host.names, device.names, deviceThenHost.names, hostThenDevice.names], [['js'], ['js copy'], ['js copy', 'js'], ['js', 'js copy']]);
    assert.ok(host.records.some((r) => 'eval_loss' in r) && host.records.some((r) => 'loss' in r));
    for (const [label, other] of [['device', device], ['paused on the device, resumed on the host', deviceThenHost], ['paused on the host, resumed on the device', hostThenDevice]] as const) {
      assert.deepEqual(other.records, host.records, `${name}, ${label}: the log`);
      assert.deepEqual(other.params, host.params, `${name}, ${label}: the host model's weights`);
      assert.deepEqual(other.adapter, host.adapter, `${name}, ${label}: the adapter`);
      assert.deepEqual(other.logits, host.logits, `${name}, ${label}: generation reads the trained weights`);
    }
  }
});

test('a model the training backend cannot hold is refused by name, the backend given back, and the host still trains', async () => {
  const events: string[] = [];
  // a GPU whose largest binding is smaller than the model's weights, as runtime.alloc refuses them
  const small = Object.create(web.jsKernels) as BrowserBuild.OpenedBackend<unknown, unknown>['kernels'];
  small.allocFloats = (n: number) => {
    throw new RangeError(`alloc: ${n * 4} bytes exceed the adapter's largest storage binding (1024 bytes)`);
  };
  const session = new web.BrowserSession();
  session.loadDemoModel(TINY, 6);
  await session.useDemoData(6, 40, 10);
  const choices = { max_steps: 2, per_device_train_batch_size: 4, max_length: 16, max_prompt_length: 8, seed: 1 };
  const params = session.model.params.slice();
  session.trainingBackend = { name: 'tiny gpu', open: () => Promise.resolve({ name: 'webgpu (tiny)', kernels: small, release: () => void events.push('release') }) };
  await assert.rejects(session.train(choices), /^Error: the model could not be copied to webgpu \(tiny\): alloc: \d+ bytes exceed the adapter's largest storage binding/);
  assert.deepEqual(events, ['release']);
  assert.deepEqual(session.model.params, params, 'the host model is untouched');
  session.trainingBackend = null;
  const summary = await session.train(choices);
  assert.equal(summary.steps, 2);
  assert.equal(summary.backend, 'js');
});

test('the page says why it cannot train on WebGPU: no navigator.gpu, no adapter, no device', async () => {
  const missing = await web.probeWebGpu(undefined);
  assert.equal(missing.available, false);
  assert.match(missing.available ? '' : missing.reason, /^navigator\.gpu is undefined: this browser has no WebGPU, or it is switched off/);
  // the two ways a GPU object can fail, as far as probeWebGpu looks at it
  const noAdapter = await web.probeWebGpu({ requestAdapter: () => Promise.resolve(null) } as unknown as GPU);
  assert.match(noAdapter.available ? '' : noAdapter.reason, /^navigator\.gpu\.requestAdapter\(\) found no adapter/);
  const throwing = await web.probeWebGpu({ requestAdapter: () => Promise.reject(new Error('GPU process crashed')) } as unknown as GPU);
  assert.match(throwing.available ? '' : throwing.reason, /^navigator\.gpu\.requestAdapter\(\) failed: GPU process crashed/);
  const limits = { maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupStorageSize: 16384, maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28 };
  const adapter = { limits, features: new Set(), info: {}, requestDevice: () => Promise.reject(new Error('out of device memory')) };
  const noDevice = await web.probeWebGpu({ requestAdapter: () => Promise.resolve(adapter) } as unknown as GPU);
  assert.match(noDevice.available ? '' : noDevice.reason, /^the WebGPU device could not be created: out of device memory/);
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

/** `ORPO_BACKEND=js orpo ARGS`: the command line on the page's kernels */
function orpoJs(args: readonly string[]): void {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], {
    encoding: 'utf8', env: { ...process.env, ORPO_BACKEND: 'js' }, timeout: 120_000,
  });
  assert.equal(r.status, 0, `orpo ${args.join(' ')}: ${r.stderr}`);
}

const folderBytes = async (dir: string): Promise<Map<string, Uint8Array>> =>
  new Map(await Promise.all((await readdir(dir)).map(async (n) => [n, new Uint8Array(await readFile(join(dir, n)))] as const)));

const withoutTimings = (r: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(r).filter(([k]) => !/runtime|per_second/.test(k)));

test('LoRA in the page trains what `ORPO_BACKEND=js orpo train --lora-r` trains: the same metrics, adapter bytes and merged folder', async () => {
  const root = join(work, 'lora-vs-cli');
  const modelDir = join(root, 'model');
  await writeDemoModelFolder(modelDir, TINY, 4);
  const data = await writeDemoData(join(root, 'data'), arithmeticTask(9, 40, 8));
  // dropout on, and a module list: every LoRA option travels the same way
  const choices = {
    method: 'orpo' as const, beta: 0.5, learning_rate: 8e-3, max_steps: 10, per_device_train_batch_size: 4, per_device_eval_batch_size: 8,
    max_length: 16, max_prompt_length: 8, logging_steps: 2, eval_steps: 5, seed: 3,
    lora_r: 4, lora_alpha: 8, lora_dropout: 0.1, lora_target_modules: 'q_proj,v_proj,down_proj',
  };
  const out = join(root, 'cli-run');
  const flags = Object.entries(choices).flatMap(([k, v]) => [`--${k.replace(/_/g, '-')}`, String(v)]);
  orpoJs(['train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out, '--save-steps', '0', '--no-report', ...flags]);

  const session = new web.BrowserSession();
  session.loadModelFolder(await folderBytes(modelDir), 'model');
  // held-out first: eval_steps is refused while there is nothing to evaluate, as on the command line
  await session.setDataFile('eval', 'eval.jsonl', new Uint8Array(await readFile(data.eval)), choices);
  await session.setDataFile('train', 'train.jsonl', new Uint8Array(await readFile(data.train)), choices);
  const records: Record<string, number>[] = [];
  const summary = await session.train(choices, { log: (r) => records.push(r) });
  assert.deepEqual(summary.lora, { r: 4, modules: ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.down_proj'] });
  const cliRecords = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.ok(cliRecords.some((r) => 'eval_loss' in r), 'both runs evaluated');
  assert.deepEqual(records.map(withoutTimings), cliRecords.map(withoutTimings));

  // the adapter: the bytes orpo train wrote, but for the base's name (a path there, the picked folder's name here)
  const adapter = unzipStored(session.adapterZip('run-lora'));
  assert.deepEqual([...adapter.keys()], ['run-lora/adapter_model.safetensors', 'run-lora/adapter_config.json']);
  assert.deepEqual(adapter.get('run-lora/adapter_model.safetensors'), new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))));
  const config = (bytes: Uint8Array): Record<string, unknown> => JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  const pageConfig = config(adapter.get('run-lora/adapter_config.json')!);
  const cliConfig = config(new Uint8Array(await readFile(join(out, 'adapter_config.json'))));
  assert.equal(pageConfig['base_model_name_or_path'], 'model');
  assert.deepEqual({ ...pageConfig, base_model_name_or_path: modelDir }, cliConfig);

  // the merged folder: what `orpo merge` writes from that adapter and base
  orpoJs(['merge', '--base', modelDir, '--adapter', out, '--out', join(root, 'merged')]);
  const merged = unzipStored(session.modelZip('run'));
  assert.deepEqual(merged.get('run/model.safetensors'), new Uint8Array(await readFile(join(root, 'merged', 'model.safetensors'))));
  assert.deepEqual(merged.get('run/config.json'), new Uint8Array(await readFile(join(root, 'merged', 'config.json'))));

  // a second run starts from the merged weights; its adapter no longer names the picked folder as its base
  await session.train({ ...choices, max_steps: 2 });
  assert.equal(config(unzipStored(session.adapterZip('again')).get('again/adapter_config.json')!)['base_model_name_or_path'], null);

  // DPO under LoRA: the reference is the policy with its adapters switched off, on both sides
  const dpo = { ...choices, method: 'dpo' as const, beta: 0.1 };
  const dpoOut = join(root, 'cli-dpo');
  const dpoFlags = Object.entries(dpo).flatMap(([k, v]) => [`--${k.replace(/_/g, '-')}`, String(v)]);
  orpoJs(['train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', dpoOut, '--save-steps', '0', '--no-report', ...dpoFlags]);
  session.loadModelFolder(await folderBytes(modelDir), 'model');
  const dpoRecords: Record<string, number>[] = [];
  await session.train(dpo, { log: (r) => dpoRecords.push(r) });
  const cliDpo = (await readFile(join(dpoOut, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.deepEqual(dpoRecords.map(withoutTimings), cliDpo.map(withoutTimings));
  assert.deepEqual(unzipStored(session.adapterZip('dpo')).get('dpo/adapter_model.safetensors'), new Uint8Array(await readFile(join(dpoOut, 'adapter_model.safetensors'))));
});

test("the page's GGUF (f32, f16, q8_0) of a LoRA-trained stories260K is `orpo export gguf`'s file for its downloaded folder, byte for byte", async (t) => {
  const shared = sharedDir();
  if (shared === null) return t.skip(SHARED_MISSING);
  const session = new web.BrowserSession();
  session.loadModelFolder(await folderBytes(join(shared, 'models', 'stories260K')), 'stories260K');
  const choices = { max_steps: 3, per_device_train_batch_size: 8, max_length: 32, max_prompt_length: 16, learning_rate: 1e-2, lora_r: 4, seed: 2 };
  await session.useDemoData(2, 40, 8, choices);
  await session.train(choices);
  const folder = await extractTo(unzipStored(session.modelZip('stories-orpo')), join(work, 'gguf'));
  for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
    const file = join(work, 'gguf', `${dtype}.gguf`);
    await exportModelFolderToGguf(folder, file, { dtype });
    assert.deepEqual(await session.gguf('stories-orpo', { dtype }), new Uint8Array(await readFile(file)), dtype);
  }
  // the demo's character tokenizer has no GGUF form: refused with the exporter's reason, as `orpo export gguf` refuses it
  session.loadDemoModel(TINY, 1);
  await assert.rejects(session.gguf('demo'), /cannot export this tokenizer to GGUF: its pre-tokenizer null is not one llama\.cpp implements/);
});

/** `orpo data stats`' error for a data file, as the page would word it: the folder dropped from the path */
function dataStatsError(file: string, modelDir: string): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'data', 'stats', '--dataset', file, '--model', modelDir], {
    encoding: 'utf8', env: { ...process.env, ORPO_BACKEND: 'js' }, timeout: 120_000, maxBuffer: 1 << 20,
  });
  assert.notEqual(r.status, 0, `orpo data stats accepted ${file}`);
  const message = /orpo data: error: (.*)/.exec(r.stderr)?.[1];
  assert.ok(message !== undefined, r.stderr);
  return message.split(`${join(file, '..')}/`).join('');
}

test('the page refuses malformed JSON and JSON Lines exactly as `orpo data stats` does: same checks, same message, same file and line', async () => {
  const dir = join(work, 'malformed');
  const modelDir = join(dir, 'model');
  await writeDemoModelFolder(modelDir, TINY, 1);
  const row = (i: number): string => JSON.stringify({ prompt: `${i}+1=`, chosen: `${i + 1}`, rejected: `${i + 2}` });
  // one row longer than the 128 MiB a row may hold: the line reader skips it without holding it, on both sides
  const overlong = new Uint8Array(128 * 1024 * 1024 + 64).fill(0x20);
  overlong.set(new TextEncoder().encode(`${row(1)}\n{"prompt": "`), 0);
  overlong.set(new TextEncoder().encode('"}\n'), overlong.length - 3);
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['trailing-comma.json', `[\n${row(1)},\n${row(2)},\n]\n`, /^trailing-comma\.json:4: the JSON array has a comma after its last row/],
    ['missing-comma.json', `[\n${row(1)}\n${row(2)}\n]\n`, /^missing-comma\.json:3: the JSON array lacks a comma between rows 0 and 1$/],
    ['double-comma.json', `[${row(1)},,${row(2)}]`, /^double-comma\.json:1: the JSON array has a comma where a row should be$/],
    ['unclosed.json', `[\n${row(1)},\n${row(2)}\n`, /^unclosed\.json:4: the JSON array is not closed/],
    ['after-end.json', `[${row(1)}]\n]`, /^after-end\.json:2: the JSON array is followed by "]" after its closing ]$/],
    ['bad-row.json', `[\n${row(1)},\n{"prompt": "2+1=", "chosen": 3,}\n]`, /^bad-row\.json:3: not valid JSON/],
    ['splits.json', JSON.stringify({ train: [JSON.parse(row(1))], test: [JSON.parse(row(2))] }), /^splits\.json: the JSON object holds several arrays \(train, test\)/],
    ['bad-line.jsonl', `${row(1)}\n${row(2)}\n{"prompt": "3+1=", "chosen": "4"\n`, /^bad-line\.jsonl:3: not valid JSON/],
    ['array-line.jsonl', `${row(1)}\n[1, 2]\n`, /^array-line\.jsonl:2: each row must be a JSON object with named fields$/],
    ['overlong.jsonl', overlong, /^overlong\.jsonl:2: the line is longer than 128 Mi bytes, more than one row can sensibly hold/],
  ];
  const session = new web.BrowserSession();
  session.loadDemoModel(TINY, 1);
  for (const [name, content, expected] of cases) {
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
    const file = join(dir, name);
    await writeFile(file, bytes);
    const cli = dataStatsError(file, modelDir);
    assert.match(cli, expected, name);
    await assert.rejects(session.setDataFile('train', name, bytes), (error: Error) => {
      assert.equal(error.message, cli, name);
      return true;
    });
  }
  // gzip cut short: both stop at the line reached, saying the file may be incomplete (the inflaters' own words differ)
  const gz = gzipSync(Array.from({ length: 2000 }, (_, i) => `${row(i)}\n`).join(''));
  const cut = new Uint8Array(gz.subarray(0, Math.floor(gz.length / 2)));
  await writeFile(join(dir, 'cut.jsonl.gz'), cut);
  const cliCut = dataStatsError(join(dir, 'cut.jsonl.gz'), modelDir);
  await assert.rejects(session.setDataFile('train', 'cut.jsonl.gz', cut), (error: Error) => {
    for (const message of [cliCut, error.message]) assert.match(message, /^cut\.jsonl\.gz:\d+: cannot read \(.*\); is the gzip file complete\?$/);
    return true;
  });
});
