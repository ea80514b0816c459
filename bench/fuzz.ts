// The fuzz suites run for as long as asked (issue 13): the generators of test/fuzz-data.test.ts (every dataset
// format, gzipped too, Parquet with several codecs, tokenizer.json, tokenizer_config.json, chat templates) and of
// test/fuzz-model.test.ts (safetensors bytes and headers, config.json, the shard index, PEFT adapters) with any
// seed, until the time is up (split evenly between the suites). Prints how many cases ran per kind and how each
// ended, and every failure with the seed and case index that make it again.
//
//   node dist/bench/fuzz.js [--suite all|data|model] [--seconds 600] [--seed 1] [--concurrency 4] [--timeout-ms 5000] [--json]
//
// Exits 1 when any case failed (hung, crashed, ran out of memory, left a rejection unawaited, threw an engine
// error or a message not naming its file).

import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dataFuzzCases } from '../test/helpers/fuzz-data-cases.js';
import { MODEL_FUZZ_TARGETS, modelFuzzCases } from '../test/helpers/fuzz-model.js';
import { describeFailures, runFuzzCases, summarise, type FuzzCase, type FuzzResult } from '../test/helpers/fuzz.js';

const { values: args } = parseArgs({
  options: {
    suite: { type: 'string', default: 'all' },
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: String(Math.max(1, Math.min(8, availableParallelism() - 1))) },
    'timeout-ms': { type: 'string', default: '5000' },
    json: { type: 'boolean', default: false },
  },
});

const seconds = Number(args.seconds);
const seed = Number(args.seed);
const SUITES: Record<string, (dir: string) => { cases: Iterable<FuzzCase> | AsyncIterable<FuzzCase>; module: URL }> = {
  data: (dir) => ({ cases: dataFuzzCases({ seed, dir }), module: new URL('../test/helpers/fuzz-data-targets.js', import.meta.url) }),
  model: (dir) => ({ cases: modelFuzzCases(dir, seed), module: MODEL_FUZZ_TARGETS }),
};
const suites = args.suite === 'all' ? Object.keys(SUITES) : [args.suite];
if (!(seconds > 0) || !Number.isSafeInteger(seed) || !suites.every((name) => Object.hasOwn(SUITES, name))) {
  console.error('usage: node dist/bench/fuzz.js [--suite all|data|model] --seconds N --seed N');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'orpo-fuzz-'));
const started = Date.now();
let done = 0;
const progress = setInterval(() => {
  if (!args.json) process.stderr.write(`\r${done} cases, ${Math.round((Date.now() - started) / 1000)} s`);
}, 5000);
const caseIndex = (r: FuzzResult): string => /case-(\d+)-/.exec(r.case.file)?.[1] ?? '?';

try {
  const runs = [];
  for (const [i, name] of suites.entries()) {
    const { cases, module } = SUITES[name]!(join(dir, name));
    runs.push(await runFuzzCases(cases, {
      module,
      deadline: started + (seconds * 1000 * (i + 1)) / suites.length,
      timeoutMs: Number(args['timeout-ms']),
      concurrency: Number(args.concurrency),
      onResult: (r) => {
        done++;
        if (r.outcome === 'failure') {
          process.stderr.write(`\nFAILURE seed ${seed} case ${caseIndex(r)} (${r.case.group}) [${r.case.label}]: ${r.failure}: ${r.message}\n`);
        }
        rmSync(r.case.file, { recursive: true, force: true }); // a long run writes hundreds of thousands of files
      },
    }));
  }
  const report = summarise(runs.flatMap((run) => run.results));
  clearInterval(progress);
  const elapsed = (Date.now() - started) / 1000;
  if (args.json) {
    console.log(JSON.stringify({ suites, seed, seconds: elapsed, cases: report.results.length, counts: report.counts, failures: report.failures.length }));
  } else {
    console.log(`\n${suites.join(' + ')}, seed ${seed}: ${report.results.length} cases in ${elapsed.toFixed(0)} s, ${report.failures.length} failures`);
    console.log('| kind | cases | ok | clean error | failure |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const [kind, c] of Object.entries(report.counts).sort()) {
      console.log(`| ${kind} | ${c.ok + c['clean-error'] + c.failure} | ${c.ok} | ${c['clean-error']} | ${c.failure} |`);
    }
    if (report.failures.length > 0) console.log(describeFailures(report, 50));
  }
  process.exitCode = report.failures.length > 0 ? 1 : 0;
} finally {
  clearInterval(progress);
  rmSync(dir, { recursive: true, force: true });
}
