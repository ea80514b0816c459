// Tokenisation as TRL's ORPO does it, checked against ids written down from first principles with the tiny
// byte-level tokenizer (ids = UTF-8 bytes, " a" -> 256, "hi" -> 257, <s> 258, </s> 259).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { padTokenIdOf } from '../src/data/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';
import { tokenizePreferenceText, validateTruncation, TRL_TRUNCATION_DEFAULTS, type TruncationOptions } from '../src/data/tokenize.js';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { applySpeedups, byteLevelString } from '../src/data/tokenizer-speedups.js';
import {
  BOS, EOS, HI, PAD, SPACE_A, TINY_CHAT_TEMPLATE, byteAlphabet, bytes, tinyTokenizer, tinyTokenizerDir, tinyTokenizerFiles,
} from './data-tiny-tokenizer.js';

const opts = (o: Partial<TruncationOptions> = {}): TruncationOptions => ({ ...TRL_TRUNCATION_DEFAULTS, ...o });

test('tiny tokenizer: ids are UTF-8 bytes with the two merges, specials are atomic, decode inverts', () => {
  const tok = tinyTokenizer();
  assert.deepEqual(tok.encode('Q: a hi'), [81, 58, SPACE_A, 32, HI]); // "Q" ":" " a" " " "hi"
  assert.deepEqual(tok.encode('ok</s>'), [111, 107, EOS]);
  assert.deepEqual(tok.encode('é'), [0xc3, 0xa9]);
  assert.equal(tok.decode([81, 58, SPACE_A, 32, HI]), 'Q: a hi');
  assert.equal(tok.decode([111, EOS], { skipSpecialTokens: true }), 'o');
  assert.equal(tok.vocabSize, 261);
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [BOS, EOS, null]);
  assert.equal(padTokenIdOf(tok), EOS, 'TRL pads with EOS when there is no pad token');
  assert.equal(padTokenIdOf(tinyTokenizer({ padToken: true })), PAD);
});

test('add_bos_token: from tokenizer_config when given, else from what the post-processor does', () => {
  assert.equal(tinyTokenizer().addBosToken, false);
  assert.equal(tinyTokenizer({ bosPostProcessor: true }).addBosToken, true);
  assert.equal(tinyTokenizer({ bosPostProcessor: true, addBosToken: false }).addBosToken, false);
  assert.equal(tinyTokenizer({ addBosToken: true }).addBosToken, true);
  assert.deepEqual(tinyTokenizer({ bosPostProcessor: true }).encode('hi', { addSpecialTokens: true }), [BOS, HI]);
});

test('explicit prompt: prompt (+BOS) then each response + EOS, exactly as TRL', () => {
  const row = { prompt: 'Q:', chosen: ' a', rejected: ' no' };
  const plain = tokenizePreferenceText(row, tinyTokenizer(), opts());
  assert.deepEqual(plain, {
    ok: true, truncatedPrompt: false, truncatedResponse: false,
    // TRL's add_bos_token_if_needed: the tokenizer has a bos_token, so it leads the prompt even though the
    // tokenizer's own encoder does not add it
    pair: { prompt: [BOS, 81, 58], chosen: [SPACE_A, EOS], rejected: [32, 110, 111, EOS] },
  });
  const withBos = tokenizePreferenceText(row, tinyTokenizer({ bosPostProcessor: true }), opts());
  assert.ok(withBos.ok);
  assert.deepEqual(withBos.pair.prompt, [BOS, 81, 58], 'an encoder that adds BOS does not get a second one');
  const noBos = tokenizePreferenceText(row, tinyTokenizer({ bosToken: false }), opts());
  assert.ok(noBos.ok);
  assert.deepEqual(noBos.pair.prompt, [81, 58], 'a tokenizer without bos_token (Qwen) gets none');
  // a response already ending in EOS does not get a second one (TRL's add_eos_token_if_needed)
  const ended = tokenizePreferenceText({ prompt: 'Q:', chosen: ' a</s>', rejected: ' hi' }, tinyTokenizer(), opts());
  assert.ok(ended.ok);
  assert.deepEqual(ended.pair.chosen, [SPACE_A, EOS]);
  assert.deepEqual(ended.pair.rejected, [32, HI, EOS]);
});

test('no double BOS when the chat template already emits it', () => {
  const tok = tinyTokenizer({ bosPostProcessor: true, chatTemplate: TINY_CHAT_TEMPLATE });
  const prompt = tok.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true });
  assert.equal(prompt, '<s><|user|>\nhi</s>\n<|assistant|>\n');
  const row = tokenizePreferenceText({ prompt, chosen: 'a</s>\n', rejected: 'b</s>\n' }, tok, opts());
  assert.ok(row.ok);
  assert.deepEqual(row.pair.prompt, [BOS, ...bytes('<|user|>\n'), HI, EOS, 10, ...bytes('<|assistant|>\n')]);
  assert.equal(row.pair.prompt.filter((id) => id === BOS).length, 1);
  // the template ends the turn with "</s>\n", so the last token is "\n" and TRL appends EOS after it
  assert.deepEqual(row.pair.chosen, [97, EOS, 10, EOS]);
});

test('truncation: prompt cut to max_prompt_length (keep_end / keep_start), then responses to max_length - max_prompt_length', () => {
  const tok = tinyTokenizer({ bosPostProcessor: true });
  const row = { prompt: 'ABCDEFGH', chosen: ' xyz', rejected: ' uv' }; // prompt [BOS A..H] = 9, chosen 5, rejected 4
  const keepEnd = tokenizePreferenceText(row, tok, opts({ maxLength: 10, maxPromptLength: 4 }));
  assert.ok(keepEnd.ok);
  assert.deepEqual(keepEnd.pair.prompt, bytes('EFGH')); // keep_end drops BOS with the start, as TRL does
  assert.deepEqual(keepEnd.pair.chosen, [32, 120, 121, 122, EOS]);
  assert.equal(keepEnd.truncatedPrompt, true);
  assert.equal(keepEnd.truncatedResponse, false);
  const keepStart = tokenizePreferenceText(row, tok, opts({ maxLength: 10, maxPromptLength: 4, truncationMode: 'keep_start' }));
  assert.ok(keepStart.ok);
  assert.deepEqual(keepStart.pair.prompt, [BOS, ...bytes('ABC')]);
  // still too long after the prompt cut: responses keep max_length - max_prompt_length = 3 tokens, EOS may go
  const tight = tokenizePreferenceText(row, tok, opts({ maxLength: 7, maxPromptLength: 4 }));
  assert.ok(tight.ok);
  assert.deepEqual(tight.pair, { prompt: bytes('EFGH'), chosen: [32, 120, 121], rejected: [32, 117, 118] });
  assert.equal(tight.truncatedResponse, true);
  // rows that fit are untouched even when the prompt is longer than max_prompt_length (TRL cuts only to fit)
  const fits = tokenizePreferenceText(row, tok, opts({ maxLength: 20, maxPromptLength: 4 }));
  assert.ok(fits.ok);
  assert.equal(fits.pair.prompt.length, 9);
});

test('max_completion_length keeps the start of each response', () => {
  const row = tokenizePreferenceText({ prompt: 'Q', chosen: ' xyz', rejected: ' uv' }, tinyTokenizer(), opts({ maxCompletionLength: 2 }));
  assert.ok(row.ok);
  assert.deepEqual(row.pair, { prompt: [BOS, 81], chosen: [32, 120], rejected: [32, 117] });
});

test('responses equal after truncation are dropped with their own reason', () => {
  const row = tokenizePreferenceText({ prompt: 'Q', chosen: ' xyz', rejected: ' xyw' }, tinyTokenizer(), opts({ maxCompletionLength: 2 }));
  assert.deepEqual(row, { ok: false, reason: 'identical_after_truncation' });
});

test('every row fits max_length with non-empty responses, whatever the lengths and settings', () => {
  const tok = tinyTokenizer({ bosPostProcessor: true });
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const word = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(98 + rand(20))).join('');
  for (let trial = 0; trial < 400; trial++) {
    const maxLength = 2 + rand(40);
    const o = opts({
      maxLength,
      maxPromptLength: rand(3) === 0 ? null : 1 + rand(maxLength - 1),
      maxCompletionLength: rand(3) === 0 ? 1 + rand(30) : null,
      truncationMode: rand(2) === 0 ? 'keep_end' : 'keep_start',
    });
    validateTruncation(o);
    const row = tokenizePreferenceText({ prompt: word(rand(60)), chosen: ` ${word(rand(50))}`, rejected: ` z${word(rand(50))}` }, tok, o);
    if (!row.ok) continue;
    const { prompt, chosen, rejected } = row.pair;
    assert.ok(prompt.length + Math.max(chosen.length, rejected.length) <= maxLength, `trial ${trial} overflows ${maxLength}`);
    assert.ok(chosen.length > 0 && rejected.length > 0, `trial ${trial} left an empty response`);
  }
});

test('settings that cannot guarantee a response token are refused with the reason', () => {
  assert.throws(() => validateTruncation(opts({ maxLength: 512, maxPromptLength: 512 })), /max_prompt_length \(512\) must be .* \[1, max_length\).*max_length is 512/);
  assert.throws(() => validateTruncation(opts({ maxLength: 1 })), /max_length must be an integer >= 2/);
  assert.throws(() => validateTruncation(opts({ maxCompletionLength: 0 })), /max_completion_length/);
});

test('loadTokenizer reads a model folder and names the missing file', async () => {
  const dir = tinyTokenizerDir({ chatTemplate: TINY_CHAT_TEMPLATE });
  const tok = await loadTokenizer(dir);
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(tok.encode('hi'), [HI]);
  assert.equal(tok.chatTemplate, TINY_CHAT_TEMPLATE);
  await assert.rejects(loadTokenizer('/nonexistent/model'), /\/nonexistent\/model\/tokenizer\.json not found/);
  await assert.rejects(
    (async () => tinyTokenizer({ chatTemplate: undefined }).applyChatTemplate([{ role: 'user', content: 'x' }]))(),
    /has no chat_template/,
  );
});

test("GPT-2's own folder names no special token: the class defaults apply, as in transformers", async () => {
  const { tokenizer } = tinyTokenizerFiles();
  (tokenizer.added_tokens as object[]).push({
    id: 261, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  const dir = mkdtempSync(join(tmpdir(), 'orpo-data-gpt2-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 1024 }));
  const silent = await loadTokenizer(dir);
  assert.equal(silent.eosTokenId, null, 'nothing says it is GPT-2 yet');
  assert.throws(() => tokenizePreferenceText({ prompt: 'Q', chosen: ' a', rejected: ' b' }, silent, opts()), /has no eos_token/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
  const gpt2 = await loadTokenizer(dir);
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual([gpt2.bosTokenId, gpt2.eosTokenId, gpt2.padTokenId, gpt2.addBosToken], [261, 261, null, false]);
  assert.equal(padTokenIdOf(gpt2), 261);
  const row = tokenizePreferenceText({ prompt: 'Q', chosen: ' a', rejected: ' b' }, gpt2, opts());
  // TRL prepends the bos_token (GPT-2's <|endoftext|>) to the prompt and appends the eos_token (the same token)
  assert.deepEqual(row.ok && row.pair, { prompt: [261, 81], chosen: [SPACE_A, 261], rejected: [32, 98, 261] });
});

test('byte-level speedup writes the same UTF-8 bytes as TextEncoder, lone surrogates included', () => {
  const table = byteAlphabet();
  const texts = ['plain ascii', 'café ñ ß', '中文 العربية', 'pair \ud83d\ude00', 'lone \ud800 high', 'lone \udc00 low', '\ud800', 'end \ud83d'];
  for (const text of texts) {
    const viaEncoder = Array.from(new TextEncoder().encode(text), (b) => table[b]).join('');
    assert.equal(byteLevelString(text, table), viaEncoder, JSON.stringify(text));
  }
});

test('all three speedups apply to a byte-level BPE tokenizer (a silent guard would cost the speed)', () => {
  const files = tinyTokenizerFiles();
  const hf = new HfTokenizer(files.tokenizer, files.config);
  assert.deepEqual(applySpeedups(hf), ['word cache', 'merge ranks', 'byte-level']);
  assert.deepEqual(hf.encode('Q: a hi', { add_special_tokens: false }).ids, [81, 58, SPACE_A, 32, HI]);
  // inside a Sequence, as Qwen, Llama 3 and GPT-2-style fast tokenizers nest it
  const nested = { ...files.tokenizer, pre_tokenizer: { type: 'Sequence', pretokenizers: [files.tokenizer.pre_tokenizer] } };
  assert.deepEqual(applySpeedups(new HfTokenizer(nested, files.config)), ['word cache', 'merge ranks', 'byte-level']);
});
