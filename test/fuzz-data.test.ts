// The data side's fuzz suite in its quick form (issue 13): a few hundred mutated dataset files of every format,
// tokenizer files and chat templates, each read in a worker with a heap limit and a timeout. Every case must end
// with rows or with one clear error naming its file: never a hang, a crash, a stack trace or an out-of-memory
// abort. The seed is fixed so a failure here is the same failure on every machine; bench/fuzz.ts runs the same
// generators for longer with any seed.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeFailures, runFuzzCases } from './helpers/fuzz.js';
import { dataFuzzCases, dataFuzzKinds } from './helpers/fuzz-data-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'orpo-fuzz-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CASES_PER_KIND = 25;

test(`${CASES_PER_KIND} mutants of every data file kind each end in rows or one clear error naming the file`, async () => {
  const started = Date.now();
  const report = await runFuzzCases(dataFuzzCases({ seed: 13, dir, perKind: CASES_PER_KIND }), {
    module: new URL('./helpers/fuzz-data-targets.js', import.meta.url),
    timeoutMs: 5000,
    maxOldGenerationSizeMb: 512,
    concurrency: 4,
    onResult: (r) => rmSync(r.case.file, { recursive: true, force: true }),
  });
  const kinds = dataFuzzKinds().map((k) => k.name);
  assert.deepEqual(Object.keys(report.counts).sort(), [...kinds].sort());
  for (const kind of kinds) {
    const { ok, 'clean-error': clean, failure } = report.counts[kind]!;
    assert.equal(ok + clean + failure, CASES_PER_KIND, kind);
  }
  assert.equal(report.failures.length, 0, `${report.failures.length} of ${report.results.length} cases failed:\n${describeFailures(report)}`);
  // the mutants must not all be refused at the door: some are still readable, so the decoders are reached
  const read = Object.values(report.counts).reduce((n, c) => n + c.ok, 0);
  assert.ok(read > report.results.length / 10, `only ${read} of ${report.results.length} cases were read`);
  assert.ok(Date.now() - started < 60_000);
});
