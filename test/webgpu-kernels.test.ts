// Every WebGPU kernel against the TypeScript reference backend, on SwiftShader (a CPU Vulkan: this machine and CI
// have no GPU). Dawn reads SwiftShader's location from LD_LIBRARY_PATH / VK_ICD_FILENAMES when the process starts,
// so the cases run in a child process (test/webgpu/parity-runner.ts) that prints one JSON line per case; each
// becomes a subtest here. Debian's chromium package ships SwiftShader (.ci/run installs it); without it the test
// is skipped, saying so. Tolerances (stated per case by the runner): 1e-5 relative (2e-5 for the products and
// backward passes that sum over more terms), relative to |ref| + mean|ref|; int32 outputs exact; the embedding
// backward bit-exact (it adds in the reference's order); the bf16-weight lookup exact, and the bf16-weight products
// bit-equal to matmulForward/Backward in bf16 mode on the widened weight (a runtime check of the runner).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSwiftShaderRunner, swiftShaderSkip } from './helpers/swiftshader.js';

interface CaseResult {
  name: string;
  ok: boolean;
  rtol: number;
  worst: number | 'Infinity';
  detail?: string;
}

test('WebGPU kernels match the TypeScript reference (SwiftShader)', { skip: swiftShaderSkip('the WebGPU kernels'), timeout: 600_000 }, async (t) => {
  const out = runSwiftShaderRunner(new URL('./webgpu/parity-runner.js', import.meta.url), { ORPO_WEBGPU_PARITY: '1' }, 540_000);
  const { lines: parsed, summary } = out;
  t.diagnostic(`adapter: ${String(parsed[0]?.adapter)}; ${String(summary.cases)} cases in ${String(summary.seconds)} s`);
  const cases = parsed.filter((r): r is Record<string, unknown> & CaseResult => typeof r.name === 'string');
  assert.ok(cases.length > 150, `expected every kernel case, got ${cases.length}`);
  // the frozen bfloat16 kernels: a runner that dropped their cases would otherwise pass
  for (const kernel of ['matmulForwardBf16[', 'matmulBackwardBf16[', 'embeddingForwardBf16 ', 'bf16 weights: ']) {
    assert.ok(cases.some((c) => c.name.startsWith(kernel)), `no ${kernel.trim()} case`);
  }
  for (const c of cases) {
    await t.test(c.name, () => {
      assert.ok(c.ok, `${c.name}: worst relative error ${c.worst} > ${c.rtol}${c.detail ? `: ${c.detail}` : ''}`);
    });
  }
  assert.equal(summary.failed, 0);
  assert.equal(out.status, 0, out.stderr.slice(-2000));
});
