// The golden fixtures (ORPO and SFT/DPO/SimPO, every case present) and an `orpo demo --backend webgpu` run on the
// WebGPU backend, on SwiftShader (a CPU Vulkan: this machine and CI have no GPU), through the same generic model,
// loss, optimiser and trainer code as the CPU backends. Dawn reads SwiftShader's location from the environment at
// process start, so the cases run in a child process (test/webgpu/fixtures-runner.ts), one JSON line each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runSwiftShaderRunner, swiftShaderSkip } from './helpers/swiftshader.js';

interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  detail?: string;
}

test('WebGPU backend (SwiftShader): golden fixtures and a short orpo train run match the reference',
  { skip: swiftShaderSkip('the WebGPU backend'), timeout: 900_000 }, async (t) => {
    const out = runSwiftShaderRunner(new URL('./webgpu/fixtures-runner.js', import.meta.url), { ORPO_WEBGPU_FIXTURES: '1' }, 840_000);
    t.diagnostic(`adapter: ${String(out.lines[0]?.adapter)}`);
    const cases = out.lines.filter((r): r is Record<string, unknown> & CaseResult => typeof r.name === 'string');
    // the repository's golden subset alone has the llama ORPO, SFT and SimPO cases, plus the training run
    assert.ok(cases.length >= 4, `expected the fixture cases and the training run, got ${cases.length}`);
    for (const c of cases) {
      await t.test(`${c.name} (${(c.ms / 1000).toFixed(1)} s)`, () => assert.ok(c.ok, c.detail));
    }
    assert.equal(out.summary.failed, 0);
    assert.equal(out.status, 0, out.stderr.slice(-2000));
  });

test('--backend webgpu without a GPU adapter: exit 1 and what is missing, no stack trace', { timeout: 120_000 }, async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'orpo-no-gpu-'));
  try {
    const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    // a Vulkan ICD list naming nothing that exists: the loader (if installed) finds no driver, so Dawn no adapter
    const env: NodeJS.ProcessEnv = { ...process.env, VK_ICD_FILENAMES: join(dir, 'none.json') };
    delete env.LD_LIBRARY_PATH;
    const r = spawnSync(process.execPath, [main, 'demo', '--backend', 'webgpu', '--max-steps', '1', '--output-dir', join(dir, 'out'), '--json'],
      { encoding: 'utf8', env, timeout: 100_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /orpo demo: error: WebGPU backend: requestAdapter\(\) found no GPU adapter\. .*Vulkan/);
    assert.doesNotMatch(r.stderr, /^\s+at .*\.js:\d+/m, 'no JavaScript stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
