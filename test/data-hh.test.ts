// The real HH-RLHF harmless-base test split (2,312 implicit-prompt transcripts in ../shared/data): every row is
// accounted for, the implicit prompt is found, and tokens give back the transcripts exactly. The tiny byte-level
// tokenizer keeps this fast and makes "exactly" checkable: its ids are the UTF-8 bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { planBatches, paddingStats, collatePlan } from '../src/data/batching.js';
import type { TokenPair } from '../src/data/collate.js';
import { DEFAULT_DATA_OPTIONS, emptyStats, streamPreferencePairs } from '../src/data/dataset.js';
import { truncatePair } from '../src/data/tokenize.js';
import { BOS, EOS, tinyTokenizer } from './data-tiny-tokenizer.js';

const HH = fileURLToPath(new URL('../../../shared/data/hh-rlhf-harmless-base-test.jsonl.gz', import.meta.url));
const skip = !existsSync(HH) && `${HH} is absent (../shared not mounted)`;
const tok = tinyTokenizer();
const untruncated: TokenPair[] = [];

test('HH-RLHF: 2312 rows read, 5 with an empty reply dropped, transcripts rebuilt exactly from the tokens', { skip }, async () => {
  const original = gunzipSync(readFileSync(HH)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { chosen: string; rejected: string });
  assert.equal(original.length, 2312);
  const stats = emptyStats();
  let used = 0;
  let endsWithAssistant = 0;
  for await (const row of streamPreferencePairs(HH, tok, { ...DEFAULT_DATA_OPTIONS, maxLength: 1 << 20, maxPromptLength: 1 << 19 }, stats)) {
    used++;
    untruncated.push(row.pair);
    const source = original[row.source.line! - 1]!;
    const { prompt, chosen, rejected } = row.pair;
    assert.equal(chosen.at(-1), EOS);
    // TRL puts the tokenizer's bos_token in front of every prompt; the rest is the transcript itself
    assert.equal(prompt[0], BOS);
    assert.equal(tok.decode(prompt.slice(1)) + tok.decode(chosen.slice(0, -1)), source.chosen, `line ${row.source.line}`);
    assert.equal(tok.decode(prompt.slice(1)) + tok.decode(rejected.slice(0, -1)), source.rejected, `line ${row.source.line}`);
    // responses start at a word boundary with their whitespace, so nothing is split inside a word
    assert.match(row.text.chosen, /^\s/);
    assert.match(row.text.rejected, /^\s/);
    if (row.text.prompt.endsWith('\n\nAssistant:')) endsWithAssistant++;
  }
  assert.deepEqual(
    { read: stats.rowsRead, used, implicit: stats.implicitPrompt, dropped: stats.dropped, truncated: stats.truncated },
    { read: 2312, used: 2307, implicit: 2307, dropped: { empty_response: 5, chosen_equals_rejected: 0, identical_after_truncation: 0, invalid: 0 }, truncated: 0 },
  );
  // most replies differ from their first word; the rest share opening words, which stay in the prompt (as TRL)
  assert.ok(endsWithAssistant > 2000 && endsWithAssistant < 2307, `${endsWithAssistant} prompts end with "Assistant:"`);
});

test('HH-RLHF with TRL defaults: every row fits max_length, truncation counted, grouping cuts padding', { skip }, () => {
  assert.equal(untruncated.length, 2307, 'the first test ran');
  let truncated = 0;
  const pairs: TokenPair[] = [];
  for (const full of untruncated) {
    const row = truncatePair(full, DEFAULT_DATA_OPTIONS);
    assert.ok(row.ok);
    const p = row.pair;
    pairs.push(p);
    const fullLength = full.prompt.length + Math.max(full.chosen.length, full.rejected.length);
    assert.equal(row.truncatedPrompt || row.truncatedResponse, fullLength > 1024);
    if (fullLength > 1024) truncated++;
    assert.ok(p.prompt.length + Math.max(p.chosen.length, p.rejected.length) <= 1024);
    assert.ok(p.chosen.length > 0 && p.rejected.length > 0);
    // keep_end: what is kept of the prompt is its end, what is kept of a response its start
    assert.deepEqual(p.prompt, full.prompt.slice(full.prompt.length - p.prompt.length));
    assert.deepEqual(p.chosen, full.chosen.slice(0, p.chosen.length));
  }
  assert.ok(truncated > 100, `${truncated} of the byte-level rows are over 1024 tokens`);
  const shuffled = planBatches(pairs, { batchSize: 8, groupByLength: false, seed: 1 });
  const grouped = planBatches(pairs, { batchSize: 8, groupByLength: true, seed: 1 });
  assert.deepEqual(grouped.flat().sort((a, b) => a - b), pairs.map((_, i) => i), 'every pair exactly once');
  const a = paddingStats(pairs, shuffled);
  const b = paddingStats(pairs, grouped);
  assert.equal(a.tokens, b.tokens);
  assert.ok(b.paddingFraction < a.paddingFraction / 2, `grouped ${b.paddingFraction} vs shuffled ${a.paddingFraction}`);
  // the padding figure is what collation really produces
  let pads = 0;
  let slots = 0;
  for (const batch of collatePlan(pairs, grouped.slice(0, 20), EOS)) {
    slots += batch.rows * batch.T;
    pads += batch.rows * batch.T - batch.tokens;
  }
  const first20 = paddingStats(pairs, grouped.slice(0, 20));
  assert.equal(first20.slots, slots);
  assert.equal(first20.slots - first20.tokens, pads);
});
