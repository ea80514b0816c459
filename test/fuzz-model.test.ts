// Quick model-file fuzz (issue 13): a few hundred seeded mutants of safetensors files (bytes, and header JSON
// re-serialised so structural changes reach the reader), config.json, model.safetensors.index.json and PEFT
// adapters (adapter_config.json and adapter_model.safetensors), each run
// in the fuzz runner's worker with a timeout and a heap limit. Every case must end in a result or one clean error
// naming the file or folder: never a hang, an out-of-memory abort, a crash, an engine error or a huge message.
// The seed is fixed so a failure replays; ORPO_FUZZ_SEED and ORPO_FUZZ_CASES run other or more cases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describeFailures, runFuzzCases } from './helpers/fuzz.js';
import { KIND_WEIGHTS, MODEL_FUZZ_TARGETS, modelFuzzCases } from './helpers/fuzz-model.js';

const SEED = Number(process.env.ORPO_FUZZ_SEED ?? 13);
const CASES = Number(process.env.ORPO_FUZZ_CASES ?? 300);

test(`model files: ${CASES} fuzz cases (seed ${SEED}) end in a result or a clean error naming the file`, async (t) => {
  const workDir = await mkdtemp(join(tmpdir(), 'orpo-fuzz-model-'));
  try {
    const started = Date.now();
    const report = await runFuzzCases(modelFuzzCases(workDir, SEED, CASES), {
      module: MODEL_FUZZ_TARGETS,
      timeoutMs: 10_000, // tiny files load in milliseconds; the margin is for a busy machine
      maxOldGenerationSizeMb: 256,
      concurrency: 4,
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    t.diagnostic(`${report.results.length} cases in ${seconds} s: ${JSON.stringify(report.counts)}`);
    assert.equal(report.results.length, CASES, 'every case ran');
    assert.equal(report.failures.length, 0, describeFailures(report));
    // every kind of case ran, and the cases reach past the first check: some mutants still load, many are refused
    for (const [kind] of KIND_WEIGHTS) assert.ok(report.counts[kind] !== undefined, `no ${kind} cases`);
    for (const target of ['readSafetensors', 'loadModelFolder', 'loadAdapterFolder']) {
      const outcomes = report.results.filter((r) => r.case.target === target).map((r) => r.outcome);
      assert.ok(outcomes.includes('ok') && outcomes.includes('clean-error'), `${target}: ${outcomes.length} cases`);
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
});
