// The page trains on WebGPU, in a real browser: headless Chromium with WebGPU on SwiftShader (WEBGPU_ARGS: a CPU
// Vulkan, since this machine and CI have no GPU). In one browser, two pages run the same short self-test (the demo
// model on the demo data, `?selftest&steps=N`) and then the same LoRA run from the form: one on WebGPU (the
// default once the worker finds an adapter; its LoRA run paused there and resumed on the TypeScript backend), one
// forced onto the TypeScript backend (`?backend=js`, the page's checkbox). Checked: the page says which backend and why, the self-test's JSON names the backend it used, the
// per-step losses and log-probs of the two pages agree within 1e-4 relative (float32 sums in other orders), and
// the model downloaded from the WebGPU page loads in Node with the page's next-token logits (the weights came back
// from the GPU before the page computed them). With ORPO_WEB_WEBGPU_FULL=1, also the full-length self-test on
// WebGPU (800 steps, held-out accuracy >= 0.9; three to four minutes here).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { jsKernels } from '../src/backend/js/kernels.js';
import { encodePrompt } from '../src/data/tokenize.js';
import { fullForwardLogits } from '../src/generate/generate.js';
import { loadModel } from '../src/io/hf-model.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';
import { buildWebPage, downloadFrom, launchChromium, newPage, NO_WEBGPU_CHROMIUM, startServer } from './helpers/web-page.js';
import { extractTo, unzipStored } from './web-unzip.js';

/** self-test steps: SwiftShader runs the demo's step in about a second, the evaluations and first compiles take longer */
const STEPS = 4;
/** the LoRA run's steps, from the form (enough for a pause to land inside the run) */
const LORA_STEPS = 10;
/** what "the same numbers" means between the GPU's float32 sums and the TypeScript backend's */
const RTOL = 1e-4;
/** the record fields compared step by step (all well away from zero: a relative tolerance means something) */
const COMPARED = ['loss', 'nll_loss', 'logps/chosen', 'logps/rejected', 'eval_loss', 'eval_logps/chosen', 'eval_logps/rejected'];

type LogRecord = Record<string, number>;
interface Logits { prompt: string; ids: number[]; logits: number[] }

interface PageRun {
  page: Page;
  errors: string[];
  backendLine: string;
  result: { backend: string; steps: number; seconds: number; before: Record<string, number | null>; after: Record<string, number | null> };
  logits: Logits;
  log: LogRecord[];
}

async function selftest(browser: Browser, url: string, timeout = 400_000): Promise<PageRun> {
  const { page, errors } = await newPage(browser);
  await page.goto(url);
  const resultText = await page.locator('#selftest-result').filter({ hasText: /\S/ }).textContent({ timeout });
  assert.equal(await page.locator('#selftest-result.error').count(), 0, `the self-test failed in the page: ${resultText}`);
  return {
    page, errors,
    backendLine: (await page.textContent('#backend')) ?? '',
    result: JSON.parse(resultText!) as PageRun['result'],
    ...await readLogits(page),
  };
}

/** what the page wrote after its latest finished run (?logits and the self-test write them) */
async function readLogits(page: Page): Promise<{ logits: Logits; log: LogRecord[] }> {
  const logits = JSON.parse((await page.locator('#selftest-logits').filter({ hasText: /\S/ }).textContent({ timeout: 60_000 }))!) as Logits;
  const log = JSON.parse((await page.locator('#selftest-log').filter({ hasText: /\S/ }).textContent({ timeout: 60_000 }))!) as LogRecord[];
  return { logits, log };
}

/**
 * A LoRA run from the form (dropout on: the GPU draws the masks the host would), then what the page wrote after
 * it. `pauseThenJs`: pause it after the first steps, tick the TypeScript backend's box and resume, so the run ends
 * on the other backend (the paused state, weights, adapters, AdamW moments and dropout counters, is the host's).
 */
async function loraRun(page: Page, pauseThenJs = false): Promise<{ status: string; paused: string | null; logits: Logits; log: LogRecord[] }> {
  // emptied first, so that what is read below is this run's (a string: the tests compile without the DOM library)
  await page.evaluate("for (const id of ['selftest-logits', 'selftest-log', 'train-status']) document.getElementById(id).textContent = ''");
  await page.check('#lora');
  await page.fill('#lora_r', '4');
  await page.fill('#lora_alpha', '8');
  await page.fill('#lora_dropout', '0.1');
  await page.fill('#max_steps', String(LORA_STEPS));
  await page.click('#train');
  let paused: string | null = null;
  if (pauseThenJs) {
    // the first progress line, looked for every frame (steps of a few tenths of a second slip between slower polls)
    await page.waitForFunction("/^step \\d+\\//.test(document.getElementById('train-status').textContent)", undefined, { polling: 'raf', timeout: 400_000 });
    await page.click('#pause');
    paused = (await page.locator('#train-status').filter({ hasText: /^(paused at|done:)/ }).textContent({ timeout: 400_000 }))!;
    await page.check('#force-js');
    await page.click('#resume');
  }
  const status = (await page.locator('#train-status').filter({ hasText: /^done:/ }).textContent({ timeout: 400_000 }))!;
  return { status, paused, ...await readLogits(page) };
}

/** The page's model folder download, loaded in Node: its next-token logits are the ones the page showed. */
async function checkDownload(run: PageRun, work: string): Promise<void> {
  const zipFile = await downloadFrom(run.page, '#download', work);
  const folder = await extractTo(unzipStored(new Uint8Array(await readFile(zipFile))), work);
  const model = await loadModel(folder, { kernels: jsKernels });
  assert.deepEqual(encodePrompt(await loadTokenizer(folder), run.logits.prompt), run.logits.ids);
  const downloaded = Array.from(fullForwardLogits(model)(run.logits.ids));
  const diff = Math.max(...downloaded.map((v, i) => Math.abs(v - run.logits.logits[i]!)));
  // the same TypeScript kernels on the same float32 weights
  assert.ok(diff <= 1e-5, `the downloaded model's logits differ from the page's by up to ${diff}`);
}

/** per step, the compared fields of two logs: the largest relative difference, failing past RTOL */
function compareLogs(what: string, gpu: readonly LogRecord[], js: readonly LogRecord[], expectSteps: number): number {
  const steps = (log: readonly LogRecord[]): number[] => log.filter((r) => 'loss' in r).map((r) => r.step!);
  assert.deepEqual(steps(gpu), steps(js), `${what}: the same steps logged`);
  assert.deepEqual(steps(js), Array.from({ length: expectSteps }, (_, i) => i + 1), `${what}: every step logged`);
  assert.equal(gpu.length, js.length, `${what}: the same records (training and evaluation)`);
  let worst = 0;
  gpu.forEach((record, i) => {
    for (const key of COMPARED) {
      const want = js[i]![key];
      const got = record[key];
      assert.equal(got === undefined, want === undefined, `${what}: record ${i} has ${key} on both sides or neither`);
      if (got === undefined || want === undefined) continue;
      const rel = Math.abs(got - want) / Math.abs(want);
      worst = Math.max(worst, rel);
      assert.ok(rel <= RTOL, `${what}, step ${record.step} ${key}: WebGPU ${got}, TypeScript ${want} (relative difference ${rel.toExponential(2)})`);
    }
  });
  return worst;
}

/** the largest difference between two logit vectors, relative to the largest logit */
function logitsDifference(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  const scale = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / scale;
}

test('the page trains on WebGPU (SwiftShader) when there is an adapter: the TypeScript backend\'s losses, and its download gives the page\'s logits', {
  skip: NO_WEBGPU_CHROMIUM,
  timeout: 900_000,
}, async (t) => {
  await buildWebPage();
  const { url, server } = await startServer();
  const browser = await launchChromium({ webgpu: true });
  const work = await mkdtemp(join(tmpdir(), 'orpo-web-webgpu-'));
  try {
    // the page on WebGPU, as it chooses by itself
    let started = performance.now();
    const gpu = await selftest(browser, `${url}?selftest&steps=${STEPS}&logits`);
    t.diagnostic(`WebGPU page: ${JSON.stringify(gpu.result)} (${((performance.now() - started) / 1000).toFixed(1)} s in the browser)`);
    assert.match(gpu.backendLine, /^Backend: WebGPU \([^)]*swiftshader[^)]*\): the training steps run on a copy of the model in GPU memory/i);
    assert.match(gpu.backendLine, /CPU implementation of WebGPU/, 'SwiftShader is named as a software adapter');
    assert.equal(await gpu.page.isChecked('#force-js'), false);
    assert.equal(await gpu.page.isEnabled('#force-js'), true, 'with an adapter the user may choose the TypeScript backend');
    assert.match(gpu.result.backend, /^webgpu \([^)]*swiftshader[^)]*\)$/i, 'the self-test names WebGPU and its adapter');
    assert.equal(gpu.result.steps, STEPS);
    assert.match((await gpu.page.textContent('#train-status'))!, new RegExp(`^done: step ${STEPS}/${STEPS} in [\\d.]+ s on webgpu \\(`));

    // the model came back from the GPU: the download loads in Node with the logits the page computed from it
    await checkDownload(gpu, work);

    // the same self-test on the TypeScript backend, chosen in a browser that has WebGPU
    started = performance.now();
    const js = await selftest(browser, `${url}?selftest&steps=${STEPS}&logits&backend=js`);
    t.diagnostic(`TypeScript page: ${JSON.stringify(js.result)} (${((performance.now() - started) / 1000).toFixed(1)} s in the browser)`);
    assert.equal(await js.page.isChecked('#force-js'), true, '?backend=js ticks the box');
    assert.match(js.backendLine, /^Backend: TypeScript backend \(jsKernels[^]*\nWebGPU is available \([^)]*swiftshader[^)]*\) but not used, as chosen below\.$/i);
    assert.equal(js.result.backend, 'js');
    const worst = compareLogs('self-test', gpu.log, js.log, STEPS);
    const selftestLogits = logitsDifference(gpu.logits.logits, js.logits.logits);
    t.diagnostic(`self-test: largest relative difference of the logged losses/log-probs ${worst.toExponential(2)}, of the next-token logits ${selftestLogits.toExponential(2)}`);
    assert.ok(selftestLogits <= RTOL, `the two pages' next-token logits differ by ${selftestLogits} of the largest`);

    // LoRA, from the form: the adapters go to the GPU and come back at a pause, the run ends on the TypeScript
    // backend; the other page runs it there from start to end
    started = performance.now();
    const gpuLora = await loraRun(gpu.page, true);
    t.diagnostic(`WebGPU LoRA run: ${gpuLora.paused}, then ${gpuLora.status} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    const pausedAt = new RegExp(`^paused at step (\\d+)/${LORA_STEPS} in [\\d.]+ s on webgpu \\([^)]*\\) \\(LoRA r=4 on \\d+ modules`).exec(gpuLora.paused!);
    assert.ok(pausedAt !== null && Number(pausedAt[1]) < LORA_STEPS, `the pause lands inside the run, on WebGPU: ${gpuLora.paused}`);
    assert.match(gpuLora.status, new RegExp(`^done: step ${LORA_STEPS}/${LORA_STEPS} in [\\d.]+ s on js \\(LoRA r=4 on \\d+ modules`), 'resumed on the TypeScript backend');
    const jsLora = await loraRun(js.page);
    assert.match(jsLora.status, / on js \(LoRA r=4 on \d+ modules/);
    const loraWorst = compareLogs('LoRA', gpuLora.log, jsLora.log, LORA_STEPS);
    const loraLogits = logitsDifference(gpuLora.logits.logits, jsLora.logits.logits);
    t.diagnostic(`LoRA: largest relative difference of the logged losses/log-probs ${loraWorst.toExponential(2)}, of the next-token logits ${loraLogits.toExponential(2)}`);
    assert.ok(loraLogits <= RTOL, `after LoRA the two pages' next-token logits differ by ${loraLogits} of the largest`);

    assert.deepEqual(gpu.errors, [], 'no errors in the WebGPU page');
    assert.deepEqual(js.errors, [], 'no errors in the TypeScript page');
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
});

// The self-test at full length (800 steps) on WebGPU, as issue 12 asks of the page on each backend. On this
// machine's 2 cores SwiftShader takes three to four minutes (the TypeScript backend one: web-page.test.ts), so it
// runs when asked for.
const FULL = process.env.ORPO_WEB_WEBGPU_FULL === '1' ? false
  : 'set ORPO_WEB_WEBGPU_FULL=1 to run it: 800 steps on SwiftShader take three to four minutes on 2 cores';

test('the full self-test on WebGPU (SwiftShader) reaches held-out accuracy >= 0.9, and its download gives the page\'s logits', {
  skip: NO_WEBGPU_CHROMIUM || FULL,
  timeout: 1_500_000,
}, async (t) => {
  await buildWebPage();
  const { url, server } = await startServer();
  const browser = await launchChromium({ webgpu: true });
  const work = await mkdtemp(join(tmpdir(), 'orpo-web-webgpu-full-'));
  try {
    const started = performance.now();
    const gpu = await selftest(browser, `${url}?selftest`, 1_400_000);
    t.diagnostic(`WebGPU self-test: ${JSON.stringify(gpu.result)} (${((performance.now() - started) / 1000).toFixed(1)} s in the browser)`);
    assert.match(gpu.result.backend, /^webgpu \(/);
    assert.equal(gpu.result.steps, 800);
    const before = gpu.result.before['eval_rewards/accuracies']!;
    const after = gpu.result.after['eval_rewards/accuracies']!;
    assert.ok(before < 0.7, `the untrained model is near chance on held-out pairs (got ${before})`);
    assert.ok(after >= 0.9, `held-out preference accuracy after training on WebGPU is ${after}, expected >= 0.9`);
    await checkDownload(gpu, work);
    assert.deepEqual(gpu.errors, [], 'no errors in the page');
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
});
