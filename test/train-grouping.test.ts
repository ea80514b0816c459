// group_by_length in the trainer: each epoch's order is the seeded shuffle, then sorted longest first inside
// mega-batches of 50 micro-batches (transformers' LengthGroupedSampler), every pair exactly once, and less padding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRAIN_OPTIONS, type TrainConfig } from '../src/train/config.js';
import { defaultsOf } from '../src/train/options.js';
import { initialState } from '../src/train/trainer.js';
import { pairLength, paddingStats } from '../src/data/batching.js';
import type { TokenPair } from '../src/data/collate.js';
import { Rng } from '../src/tensor/rng.js';

function pairs(n: number): TokenPair[] {
  const rng = new Rng(3);
  const seq = (len: number) => Array.from({ length: len }, () => 1 + rng.int(50));
  return Array.from({ length: n }, () => ({ prompt: seq(1 + rng.int(40)), chosen: seq(1 + rng.int(30)), rejected: seq(1 + rng.int(30)) }));
}

test('group_by_length: same pairs as the plain shuffle, sorted inside mega-batches, less padding', () => {
  const data = pairs(900);
  const base: TrainConfig = { ...defaultsOf(TRAIN_OPTIONS), per_device_train_batch_size: 4, max_steps: 10 };
  assert.equal(base.group_by_length, false, 'off by default, as in transformers');
  const plain = initialState(data.length, base, data).order;
  const grouped = initialState(data.length, { ...base, group_by_length: true }, data).order;
  assert.deepEqual([...grouped].sort((a, b) => a - b), data.map((_, i) => i), 'every pair exactly once');
  const mega = 4 * 50;
  for (let s = 0; s < data.length; s += mega) {
    // the same pairs as the plain shuffle's mega-batch, longest first
    assert.deepEqual([...grouped.slice(s, s + mega)].sort((a, b) => a - b), [...plain.slice(s, s + mega)].sort((a, b) => a - b));
    const lengths = grouped.slice(s, s + mega).map((i) => pairLength(data[i]!));
    for (let i = 1; i < lengths.length; i++) assert.ok(lengths[i - 1]! >= lengths[i]!, `mega-batch at ${s} not sorted`);
  }
  const batchesOf = (order: number[]) => Array.from({ length: Math.ceil(order.length / 4) }, (_, b) => order.slice(4 * b, 4 * b + 4));
  const p = paddingStats(data, batchesOf(plain)).paddingFraction;
  const g = paddingStats(data, batchesOf(grouped)).paddingFraction;
  assert.ok(g < p / 2, `padding grouped ${g} vs shuffled ${p}`);
});
