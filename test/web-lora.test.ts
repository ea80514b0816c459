// LoRA in the page, end to end in a real browser (Debian's Chromium, headless, driven by playwright-core): pick
// ../shared's stories260K folder in the page, train a short LoRA run from the form on the demo data, then take all
// three downloads away and check them in Node with the library:
//   - the PEFT adapter, loaded over the same base model, gives the page's next-token logits;
//   - the GGUF file (f32 and q8_0) is the very file `orpo export gguf` writes for the downloaded (merged) folder;
//   - llama.cpp (node-llama-cpp) loads the f32 file without a warning and predicts the page's next token distribution.
import assert from 'node:assert/strict';
import { readdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsKernels } from '../src/backend/js/kernels.js';
import { encodePrompt } from '../src/data/tokenize.js';
import { fullForwardLogits } from '../src/generate/generate.js';
import { loadAdapter } from '../src/io/adapter.js';
import { exportModelFolderToGguf } from '../src/io/gguf/export.js';
import { loadModel } from '../src/io/hf-model.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';
import { complaintsSince, llamaCpp, llamaLog, llamaNextLogprobs, loadGguf } from './helpers/llama-cpp.js';
import { sharedDir, SHARED_MISSING } from './helpers/shared.js';
import { buildWebPage, downloadFrom, launchChromium, newPage, NO_CHROMIUM, startServer } from './helpers/web-page.js';
import { extractTo, unzipStored } from './web-unzip.js';

const logSoftmax = (logits: readonly number[]): number[] => {
  const max = Math.max(...logits);
  const lse = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
  return logits.map((v) => v - lse);
};

test('LoRA trained in the page: its PEFT adapter gives the page\'s logits in Node, its GGUF is orpo export gguf\'s and runs in llama.cpp', {
  skip: NO_CHROMIUM,
  timeout: 600_000,
}, async (t) => {
  const shared = sharedDir();
  if (shared === null) return t.skip(SHARED_MISSING);
  const baseDir = join(shared, 'models', 'stories260K');
  await buildWebPage();
  const { url, server } = await startServer();
  const browser = await launchChromium();
  const work = await mkdtemp(join(tmpdir(), 'orpo-web-lora-'));
  try {
    const { page, errors } = await newPage(browser);
    // ?logits: the page shows the prompt's next-token logits after each finished run
    await page.goto(`${url}?logits`);
    await page.locator('#backend').filter({ hasText: 'TypeScript' }).waitFor({ timeout: 60_000 });
    await page.setInputFiles('#folder-input', baseDir);
    await page.locator('#model-status').filter({ hasText: /^stories260K: llama, 5 layers/ }).waitFor({ timeout: 60_000 });
    assert.match(await page.inputValue('#lora_r'), /^16$/, 'LoRA starts at r 16');
    assert.equal(await page.isChecked('#lora'), false, 'LoRA is off by default');
    assert.match(await page.getAttribute('#lora_target_modules', 'placeholder') ?? '', /^q_proj,v_proj \(PEFT's default\)/);
    await page.click('#demo-data');
    await page.locator('#data-status').filter({ hasText: /rows read/ }).waitFor({ timeout: 60_000 });

    await page.fill('#prompt', 'Once upon a time');
    await page.fill('#max_steps', '6');
    await page.fill('#per_device_train_batch_size', '8');
    await page.fill('#learning_rate', '0.01');
    await page.check('#lora');
    await page.fill('#lora_r', '4');
    await page.fill('#lora_alpha', '8');
    await page.fill('#lora_dropout', '0.1');
    await page.fill('#lora_target_modules', 'q_proj,v_proj,o_proj');
    await page.click('#train');
    const status = await page.locator('#train-status').filter({ hasText: /^(done|paused)/ }).textContent({ timeout: 300_000 });
    assert.match(status!, /^done: step 6\/6 .*\(LoRA r=4 on 15 modules, [\d,]+ trainable parameters\)/);
    const logitsText = await page.locator('#selftest-logits').filter({ hasText: /\S/ }).textContent({ timeout: 60_000 });
    const expected = JSON.parse(logitsText!) as { prompt: string; ids: number[]; logits: number[] };
    assert.equal(await page.isDisabled('#download-adapter'), false, 'the adapter can be downloaded after a LoRA run');

    // the PEFT adapter over the base model, in Node
    const adapterZip = unzipStored(new Uint8Array(await readFile(await downloadFrom(page, '#download-adapter', work))));
    assert.deepEqual([...adapterZip.keys()], ['orpo-trained-model-lora/adapter_model.safetensors', 'orpo-trained-model-lora/adapter_config.json']);
    const adapterDir = await extractTo(adapterZip, join(work, 'adapter'));
    const config = JSON.parse(await readFile(join(adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([config['r'], config['lora_alpha'], config['lora_dropout'], config['target_modules'], config['base_model_name_or_path']],
      [4, 8, 0.1, ['q_proj', 'v_proj', 'o_proj'], 'stories260K']);
    const model = await loadModel(baseDir, { kernels: jsKernels });
    await loadAdapter(adapterDir, model);
    assert.deepEqual(encodePrompt(await loadTokenizer(baseDir), expected.prompt), expected.ids, 'the base tokenizer encodes the prompt as the page did');
    const logits = fullForwardLogits(model)(expected.ids);
    assert.equal(logits.length, expected.logits.length);
    const maxDiff = Math.max(...expected.logits.map((v, i) => Math.abs(v - logits[i]!)));
    // the same TypeScript kernels on the same float32 weights: equal up to at most float rounding of V8's Math functions
    assert.ok(maxDiff <= 1e-5, `base + downloaded adapter: logits differ from the page's by up to ${maxDiff}`);

    // the merged folder, and GGUF files of the same weights: byte for byte what the exporter writes for that folder
    const folder = await extractTo(unzipStored(new Uint8Array(await readFile(await downloadFrom(page, '#download', work)))), join(work, 'merged'));
    assert.deepEqual((await readdir(folder)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const ggufs: Record<string, string> = {};
    for (const dtype of ['f32', 'q8_0'] as const) {
      await page.selectOption('#gguf-dtype', dtype);
      const file = await downloadFrom(page, '#download-gguf', work);
      assert.equal(file, join(work, `orpo-trained-model-${dtype}.gguf`));
      const reference = join(work, 'merged', `exported-${dtype}.gguf`);
      await exportModelFolderToGguf(folder, reference, { dtype });
      assert.ok(Buffer.compare(await readFile(file), await readFile(reference)) === 0, `${dtype}: the page's GGUF differs from orpo export gguf's`);
      ggufs[dtype] = file;
    }
    assert.deepEqual(errors, [], 'no errors in the page');

    // llama.cpp runs the f32 file: the page's next-token distribution, within GGUF export's f32 tolerance
    const llama = await llamaCpp();
    if (typeof llama === 'string') {
      t.diagnostic(llama);
      return;
    }
    const mark = llamaLog.length;
    const loaded = await loadGguf(llama, ggufs['f32']!);
    try {
      assert.deepEqual(await complaintsSince(mark), [], 'llama.cpp loads the page\'s GGUF without a warning');
      const rows = await llamaNextLogprobs(loaded, expected.ids);
      const want = logSoftmax(expected.logits);
      const got = rows.at(-1)!;
      const worst = Math.max(...want.map((v, i) => Math.abs(v - got[i]!)));
      assert.ok(worst <= 1e-4, `llama.cpp's next-token log-probs differ from the page's by up to ${worst}`);
      process.stderr.write(`web LoRA: ${status}; base + adapter logits within ${maxDiff} of the page's, llama.cpp log-probs within ${worst.toExponential(2)}\n`);
    } finally {
      await loaded.dispose();
    }
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
});
