// The in-browser trainer end to end in a real browser (Debian's Chromium, headless, driven by playwright-core):
// build dist/web, serve it with `orpo web`, open ?selftest (the demo trained in the page on the TypeScript backend,
// which the page falls back to, saying why, in a browser without a WebGPU adapter),
// require held-out preference accuracy >= 0.9, download the trained folder, unzip it, load it with the Node library
// and check that its next-token logits equal the ones the page computed.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsKernels } from '../src/backend/js/kernels.js';
import { encodePrompt } from '../src/data/tokenize.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';
import { fullForwardLogits } from '../src/generate/generate.js';
import { loadModel } from '../src/io/hf-model.js';
import { buildWebPage, downloadFrom, launchChromium, newPage, NO_CHROMIUM, startServer } from './helpers/web-page.js';
import { extractTo, unzipStored } from './web-unzip.js';

interface SelftestResult {
  backend: string;
  steps: number;
  seconds: number;
  before: Record<string, number | null>;
  after: Record<string, number | null>;
}

test('the page trains the demo to held-out accuracy >= 0.9 and its download loads in Node with the same logits', {
  skip: NO_CHROMIUM,
  timeout: 600_000,
}, async () => {
  await buildWebPage();
  const { url, server } = await startServer();
  const browser = await launchChromium();
  const work = await mkdtemp(join(tmpdir(), 'orpo-web-'));
  try {
    const { page, errors: pageErrors } = await newPage(browser);
    const started = performance.now();
    await page.goto(`${url}?selftest`);
    const resultText = await page.locator('#selftest-result').filter({ hasText: /\S/ }).textContent({ timeout: 480_000 });
    const failed = await page.locator('#selftest-result.error').count();
    assert.equal(failed, 0, `the self-test failed in the page: ${resultText}`);
    process.stderr.write(`web selftest: ${resultText} (${((performance.now() - started) / 1000).toFixed(1)} s in the browser)\n`);
    assert.deepEqual(pageErrors, [], 'no errors in the page');
    const result = JSON.parse(resultText!) as SelftestResult;
    // launched without WEBGPU_ARGS, Chromium has navigator.gpu but no adapter: the page falls back and says why
    assert.equal(result.backend, 'js', 'the page trains on the TypeScript backend');
    assert.match((await page.textContent('#backend'))!,
      /^Backend: TypeScript backend \(jsKernels[^]*\nWebGPU not used: navigator\.gpu\.requestAdapter\(\) found no adapter: /);
    assert.equal(await page.isDisabled('#force-js'), true, 'nothing to choose between without an adapter');
    assert.match((await page.textContent('#train-status'))!, / on js \(every weight/);
    assert.ok(result.steps > 0 && result.seconds > 0);
    const before = result.before['eval_rewards/accuracies']!;
    const after = result.after['eval_rewards/accuracies']!;
    assert.ok(before < 0.7, `the untrained model is near chance on held-out pairs (got ${before})`);
    assert.ok(after >= 0.9, `held-out preference accuracy after training is ${after}, expected >= 0.9`);
    const logitsText = await page.locator('#selftest-logits').filter({ hasText: /\S/ }).textContent({ timeout: 60_000 });
    const expected = JSON.parse(logitsText!) as { prompt: string; ids: number[]; logits: number[] };

    const zipFile = await downloadFrom(page, '#download', work);
    const files = unzipStored(new Uint8Array(await readFile(zipFile)));
    const folderNames = [...files.keys()].map((name) => name.split('/').slice(1).join('/')).sort();
    assert.deepEqual(folderNames, ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const folder = await extractTo(files, work);
    const model = await loadModel(folder, { kernels: jsKernels });
    const tokenizer = await loadTokenizer(folder);
    assert.deepEqual(encodePrompt(tokenizer, expected.prompt), expected.ids, 'the downloaded tokenizer encodes the prompt as the page did');
    const logits = fullForwardLogits(model)(expected.ids);
    assert.equal(logits.length, expected.logits.length);
    const maxDiff = Math.max(...expected.logits.map((v, i) => Math.abs(v - logits[i]!)));
    // the same TypeScript kernels on the same float32 weights: equal up to at most float rounding of V8's Math functions
    assert.ok(maxDiff <= 1e-5, `the downloaded model's logits differ from the page's by up to ${maxDiff}`);
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
});
