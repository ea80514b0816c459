// The fuzz runner's verdicts, each from a target that does exactly one thing wrong (or right), and the mutators'
// determinism: the same seed gives the same bytes, so a failing case can be replayed from its seed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Rng, describeFailures, mutateBytes, mutateJson, runFuzzCases, splice, type FailureKind, type FuzzOutcome,
} from './helpers/fuzz.js';

const targets = new URL('./helpers/fuzz-harness-targets.js', import.meta.url);

test('the runner tells ok, clean errors and every kind of failure apart, and survives hangs, OOM and exits', async () => {
  const expected: [string, FuzzOutcome, FailureKind?][] = [
    ['returns', 'ok'],
    ['namesFile', 'clean-error'],
    ['namesNothing', 'failure', 'unnamed'],
    ['engineError', 'failure', 'stack-trace'],
    ['throwsString', 'failure', 'not-an-error'],
    ['longMessage', 'failure', 'too-long'],
    ['spins', 'failure', 'hang'],
    ['spinsAsync', 'failure', 'hang'],
    ['backtracks', 'failure', 'hang'],
    ['exits', 'failure', 'crash'],
    ['leavesRejection', 'failure', 'unhandled-rejection'],
    ['leavesLateRejection', 'failure', 'unhandled-rejection'],
    ['returns', 'ok'], // the worker replaced after all that still runs cases
  ];
  const file = '/tmp/some-data.jsonl';
  const report = await runFuzzCases(
    expected.map(([target]) => ({ target, input: file, file })),
    { module: targets, timeoutMs: 2000, maxOldGenerationSizeMb: 32, concurrency: 6 },
  );
  const got = new Map(report.results.map((r) => [`${r.case.target}`, [r.outcome, r.failure]]));
  for (const [target, outcome, failure] of expected) assert.deepEqual(got.get(target), [outcome, failure], target);
  assert.equal(report.failures.length, 10, describeFailures(report));
  assert.deepEqual(report.counts.returns, { ok: 2, 'clean-error': 0, failure: 0 });
});

test('a case that outgrows the heap limit is an out-of-memory failure, and the next case still runs', async () => {
  // alone and with a generous timeout: how fast the heap fills depends on how busy the machine is
  const cases = ['eatsMemory', 'returns'].map((target) => ({ target, input: null, file: 'x' }));
  const report = await runFuzzCases(cases, { module: targets, timeoutMs: 20_000, maxOldGenerationSizeMb: 32 });
  assert.deepEqual(report.results.map((r) => [r.outcome, r.failure]), [['failure', 'oom'], ['ok', undefined]]);
});

test('a deadline stops an endless stream of cases', async () => {
  function* endless() {
    for (;;) yield { target: 'returns', input: null, file: 'x' };
  }
  const report = await runFuzzCases(endless(), { module: targets, deadline: Date.now() + 300 });
  assert.ok(report.results.length > 0 && report.results.every((r) => r.outcome === 'ok'));
});

test('mutators are deterministic per seed, change their input and never modify it', () => {
  const input = Buffer.from('{"prompt": "a", "chosen": "b", "rejected": "c"}\n'.repeat(4), 'utf8');
  const copy = Buffer.from(input);
  const runs = [new Rng(7), new Rng(7), new Rng(8)].map((rng) => mutateBytes(input, rng, 4));
  assert.deepEqual(runs[0], runs[1]);
  assert.notDeepEqual(runs[0]!.bytes, runs[2]!.bytes);
  assert.deepEqual(input, copy);
  let changed = 0;
  for (let seed = 0; seed < 50; seed++) if (Buffer.compare(mutateBytes(input, new Rng(seed)).bytes, input) !== 0) changed++;
  assert.ok(changed >= 45, `${changed} of 50 mutations changed the bytes`);
  const spliced = splice(input, new TextEncoder().encode('XYZ'), new Rng(1));
  assert.ok(spliced.length <= input.length + 3);

  const doc = { model: { vocab: { a: 0, b: 1 }, merges: [['a', 'b']] }, added_tokens: [{ id: 2, content: '<s>' }] };
  const a = mutateJson(doc, new Rng(3));
  assert.deepEqual(a, mutateJson(doc, new Rng(3)));
  assert.deepEqual(doc.added_tokens, [{ id: 2, content: '<s>' }]);
  const steps = new Set(Array.from({ length: 60 }, (_, s) => mutateJson(doc, new Rng(s)).step.split(' ')[0]));
  for (const kind of ['delete', 'replace', 'resize']) assert.ok(steps.has(kind), `${kind} in ${[...steps].join(',')}`);
});

test('a target module that cannot be loaded stops the run at once instead of timing out every case', async () => {
  const broken = new URL('./helpers/no-such-fuzz-targets.js', import.meta.url);
  const started = Date.now();
  await assert.rejects(
    runFuzzCases([{ target: 'returns', input: null, file: 'x' }], { module: broken, timeoutMs: 10_000 }),
    /failed to load/,
  );
  assert.ok(Date.now() - started < 5000);
});
