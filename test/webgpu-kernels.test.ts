// Every WebGPU kernel against the TypeScript reference backend, on SwiftShader (a CPU Vulkan: this machine and CI
// have no GPU). Dawn reads SwiftShader's location from LD_LIBRARY_PATH / VK_ICD_FILENAMES when the process starts,
// so the cases run in a child process (test/webgpu/parity-runner.ts) that prints one JSON line per case; each
// becomes a subtest here. Debian's chromium package ships SwiftShader (.ci/run installs it); without it the test
// is skipped, saying so. Tolerances (stated per case by the runner): 1e-5 relative (2e-5 for the products and
// backward passes that sum over more terms), relative to |ref| + mean|ref|; int32 outputs exact; the embedding
// backward bit-exact (it adds in the reference's order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SWIFTSHADER_DIR = '/usr/lib/chromium';
const SWIFTSHADER_ICD = `${SWIFTSHADER_DIR}/vk_swiftshader_icd.json`;
const skip = existsSync(SWIFTSHADER_ICD) ? false
  : `SwiftShader not found (${SWIFTSHADER_ICD}): install Debian's chromium package to run the WebGPU kernels on the CPU`;

interface CaseResult {
  name: string;
  ok: boolean;
  rtol: number;
  worst: number | 'Infinity';
  detail?: string;
}

test('WebGPU kernels match the TypeScript reference (SwiftShader)', { skip, timeout: 600_000 }, async (t) => {
  const runner = fileURLToPath(new URL('./webgpu/parity-runner.js', import.meta.url));
  const child = spawnSync(process.execPath, [runner], {
    env: { ...process.env, ORPO_WEBGPU_PARITY: '1', VK_ICD_FILENAMES: SWIFTSHADER_ICD,
      LD_LIBRARY_PATH: [SWIFTSHADER_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
    encoding: 'utf8',
    timeout: 540_000,
    maxBuffer: 64 << 20,
  });
  const lines = child.stdout.split('\n').filter((l) => l.startsWith('{'));
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const summary = parsed.find((r) => r.summary === true);
  assert.ok(summary, `the runner ended without a summary (exit ${child.status}, signal ${child.signal}):\n` +
    `${child.stdout.slice(-2000)}\n${child.stderr.slice(-4000)}`);
  t.diagnostic(`adapter: ${String(parsed[0]?.adapter)}; ${String(summary.cases)} cases in ${String(summary.seconds)} s`);
  const cases = parsed.filter((r): r is Record<string, unknown> & CaseResult => typeof r.name === 'string');
  assert.ok(cases.length > 150, `expected every kernel case, got ${cases.length}`);
  for (const c of cases) {
    await t.test(c.name, () => {
      assert.ok(c.ok, `${c.name}: worst relative error ${c.worst} > ${c.rtol}${c.detail ? `: ${c.detail}` : ''}`);
    });
  }
  assert.equal(summary.failed, 0);
  assert.equal(child.status, 0, child.stderr.slice(-2000));
});
