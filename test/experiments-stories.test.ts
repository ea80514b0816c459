// The stories experiment (experiments/stories/): the judge's rule on hand-written cases, the prompt split, and
// make-data end to end on a tiny count with the real stories260K (skipped without ../shared).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import score, { judge, mentions, passes, promptCharacter, STORY_NAMES, PASS_SCORE } from '../experiments/stories/judge.js';
import { allPrompts, heldOutCells, PROMPT_NAMES, splitPrompts } from '../experiments/stories/prompts.js';
import { loadPreferencePairs, DEFAULT_DATA_OPTIONS, encodePrompt, loadTokenizer } from '../src/index.js';
import { repoRoot, SHARED_MISSING, sharedDir } from './helpers/shared.js';

const MIA = 'Once upon a time, there was a little girl named Mia.';

test('judge: naming the character again and nobody else passes', () => {
  assert.equal(score(MIA, 'Mia loved to play in the park.'), 1);
  assert.equal(score(MIA, "She found a ball. It was Mia's ball."), 1, 'possessive counts');
  assert.equal(score(MIA, 'She played with Spot, her dog. Mia was happy.'), 1, 'pets are not on the list');
  assert.ok(passes(MIA, 'Mia smiled.'));
  assert.equal(PASS_SCORE, 1);
});

test('judge: forgetting the character or bringing in others fails, one point per intruder', () => {
  assert.equal(score(MIA, 'She loved to play in the park.'), 0, 'no name at all');
  assert.equal(score(MIA, 'Mia and Lily played in the park.'), 0, 'own name + one intruder');
  assert.equal(score(MIA, 'Lily played in the park.'), -1);
  assert.equal(score(MIA, 'Lily and Tom played. Lily was happy.'), -2, 'distinct intruders, each once');
  assert.equal(score(MIA, 'Mia met Tim, Sue and Ben.'), -2);
  assert.ok(!passes(MIA, 'Mia met Tom.'));
  const j = judge(MIA, 'Mia met Tom and Sara.');
  assert.deepEqual({ character: j.character, mentions: j.mentionsCharacter, intruders: j.intruders, pass: j.pass },
    { character: 'Mia', mentions: true, intruders: ['Sara', 'Tom'].sort((a, b) => STORY_NAMES.indexOf(a) - STORY_NAMES.indexOf(b)), pass: false });
});

test('judge: whole words with exact capitalisation only', () => {
  assert.equal(score(MIA, 'She went to Miami.'), 0, 'a name inside a longer word is not the name');
  assert.equal(score(MIA, 'MIA and mia played.'), 0, 'other capitalisations are not the name');
  assert.equal(score(MIA, 'Mia put on her jacket and sat on the bench. Tomorrow she would sing.'), 1,
    'jacket/bench/Tomorrow contain Jack/Ben/Tom but are not them');
  assert.equal(score(MIA, 'Mia saw Benny.'), 0, 'Benny is another name, Ben is not in it');
  assert.equal(score('Once upon a time, there was a boy named Tim.', 'Timmy ran.'), -1, 'Timmy is not Tim');
  assert.equal(score('Once upon a time, there was a boy named Tim.', 'Tim ran. "Tim!"'), 1);
  assert.equal(score(MIA, 'Mia, Mia-Mia!'), 1);
  assert.ok(mentions('(Mia)', 'Mia') && mentions('Mia', 'Mia') && !mentions('Mias', 'Mia') && !mentions('aMia', 'Mia'));
  assert.ok(mentions('Émile et Mia.', 'Mia') && !mentions('Mià', 'Mia'), 'any letter, not only ASCII, continues a word');
});

test('judge: the prompt\'s first name is the character; every name in the prompt is exempt', () => {
  const p = 'Once upon a time, there was a girl named Sue. She had a friend called Tom.';
  assert.equal(promptCharacter(p), 'Sue');
  assert.equal(score(p, 'Sue and Tom played.'), 1, 'a name from the prompt is not an intruder');
  assert.equal(score(p, 'Tom played.'), 0, 'but it does not stand in for the character');
  assert.equal(promptCharacter('Tom and Sue went out.'), 'Tom');
  assert.throws(() => score('Once upon a time, there was a frog.', 'The frog jumped.'), /names no character/);
  assert.equal(score(MIA, ''), 0);
});

test('prompts: every prompt names its character first; train and eval are disjoint by (name, opening) cell', () => {
  const all = allPrompts();
  for (const p of all.slice(0, 2000)) assert.equal(promptCharacter(p.prompt), p.name, p.prompt);
  for (const g of ['girl', 'boy'] as const) for (const n of PROMPT_NAMES[g]) assert.ok(STORY_NAMES.includes(n));
  const { train, eval: ev } = splitPrompts(1600, 400, 1);
  assert.equal(train.length, 1600);
  assert.equal(ev.length, 400);
  assert.equal(new Set(train.map((p) => p.prompt)).size, 1600, 'no repeated train prompt');
  assert.equal(new Set(ev.map((p) => p.prompt)).size, 400);
  const held = heldOutCells(1);
  const cell = (p: { name: string; opening: number }): string => `${p.name}/${p.opening}`;
  assert.ok(ev.every((p) => held.has(cell(p))) && train.every((p) => !held.has(cell(p))));
  const trainPrompts = new Set(train.map((p) => p.prompt));
  assert.ok(ev.every((p) => !trainPrompts.has(p.prompt)));
  // the same seed gives the same split
  assert.deepEqual(splitPrompts(10, 10, 1).eval.map((p) => p.prompt), ev.slice(0, 10).map((p) => p.prompt));
});

const shared = sharedDir();

test('make-data: a tiny run writes well-formed pairs, prompts and stats, deterministically', { skip: shared === null ? SHARED_MISSING : false }, async () => {
  const script = join(repoRoot, 'dist', 'experiments', 'stories', 'make-data.js');
  const model = join(shared!, 'models', 'stories260K');
  const dirs = [mkdtempSync(join(tmpdir(), 'stories-a-')), mkdtempSync(join(tmpdir(), 'stories-b-'))];
  try {
    const run = (out: string): string => execFileSync(process.execPath,
      [script, '--out', out, '--train-prompts', '6', '--eval-prompts', '4', '--samples', '4', '--seed', '3', '--model', model],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const printed = run(dirs[0]!);
    assert.match(printed, /base rate/);
    const dir = dirs[0]!;
    for (const f of ['train.jsonl', 'eval.jsonl', 'eval-prompts.jsonl', 'samples.jsonl.gz', 'stats.json']) {
      assert.ok(existsSync(join(dir, f)), f);
    }
    const lines = (f: string): Record<string, unknown>[] =>
      readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    const evalPrompts = lines('eval-prompts.jsonl');
    assert.equal(evalPrompts.length, 4);
    assert.ok(evalPrompts.every((r) => typeof r.prompt === 'string' && promptCharacter(r.prompt) !== null));
    const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
    assert.equal(stats.train.samples, 24);
    assert.equal(stats.eval.samples, 16);
    assert.equal(stats.options.seed, 3);
    assert.ok(stats.base_rate >= 0 && stats.base_rate <= 1);

    const samples = gunzipSync(readFileSync(join(dir, 'samples.jsonl.gz'))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(samples.length, 40);
    for (const s of samples) assert.equal(s.score, score(s.prompt, s.completion), 'stored scores are the judge\'s');
    const trainPromptSet = new Set(samples.filter((s) => s.split === 'train').map((s) => s.prompt));
    assert.ok(evalPrompts.every((r) => !trainPromptSet.has(r.prompt as string)), 'eval prompts are not train prompts');

    const tokenizer = await loadTokenizer(model);
    for (const [f, split] of [['train.jsonl', 'train'], ['eval.jsonl', 'eval']] as const) {
      const pairs = lines(f);
      assert.equal(pairs.length, stats[split].pairs);
      for (const p of pairs) {
        const prompt = p.prompt as string;
        const chosen = p.chosen as string;
        const rejected = p.rejected as string;
        assert.ok(passes(prompt, chosen) && !passes(prompt, rejected), `${f}: chosen passes, rejected fails`);
        assert.equal(p.chosen_score, score(prompt, chosen));
        assert.ok(!/^\s/.test(chosen) && !/^\s/.test(rejected), 'responses start at a word: the tokenizer adds the space marker');
        // prompt ids + response ids are exactly the sampled sequence: the response re-encodes to its sample
        const sample = samples.find((s) => s.prompt === prompt && s.completion === chosen);
        assert.ok(sample?.round_trip, 'chosen is a sample whose text re-encodes to its ids');
      }
      // the library's data layer reads the file as explicit-prompt pairs, nothing dropped
      if (pairs.length > 0) {
        const { pairs: tokenized, stats: dataStats } = await loadPreferencePairs(join(dir, f), tokenizer, DEFAULT_DATA_OPTIONS);
        assert.equal(tokenized.length, pairs.length);
        assert.equal(dataStats.implicitPrompt + dataStats.conversational, 0);
        tokenized.forEach((t, i) => {
          const p = pairs[i]!;
          assert.equal(t.prompt[0], tokenizer.bosTokenId);
          assert.deepEqual(t.chosen.slice(0, -1), tokenizer.encode(p.chosen as string));
          // prompt and response encoded apart are the prompt and response encoded together, space-joined
          assert.deepEqual([...t.prompt, ...t.chosen.slice(0, -1)], encodePrompt(tokenizer, `${p.prompt} ${p.chosen}`));
          assert.deepEqual([...t.prompt, ...t.rejected.slice(0, -1)], encodePrompt(tokenizer, `${p.prompt} ${p.rejected}`));
        });
      }
    }
    // same options, same files
    run(dirs[1]!);
    for (const f of ['train.jsonl', 'eval.jsonl', 'eval-prompts.jsonl', 'samples.jsonl.gz']) {
      assert.ok(readFileSync(join(dirs[0]!, f)).equals(readFileSync(join(dirs[1]!, f))), `${f} is reproducible`);
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});
