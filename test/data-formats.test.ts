// TRL's preference formats -> prompt / chosen / rejected text: explicit, conversational, implicit prompt (text and
// messages), column mapping, system messages, and errors that name the field and the fields present.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonTextPrefix, exampleToText, parsePreferenceRow, unusableReason } from '../src/data/formats.js';
import { TINY_CHAT_TEMPLATE, tinyTokenizer } from './data-tiny-tokenizer.js';

const src = { file: 'rows.jsonl', line: 7 };
const tok = tinyTokenizer({ chatTemplate: TINY_CHAT_TEMPLATE });

test('explicit string prompt passes through untouched', () => {
  const ex = parsePreferenceRow({ prompt: 'Q?', chosen: ' yes', rejected: ' no', score: 3 }, {}, src);
  assert.deepEqual(ex, { kind: 'text', implicitPrompt: false, prompt: 'Q?', chosen: ' yes', rejected: ' no' });
  assert.deepEqual(exampleToText(ex, tok), { prompt: 'Q?', chosen: ' yes', rejected: ' no' });
});

test('implicit text prompt: HH-RLHF transcripts split before the first differing word', () => {
  const chosen = '\n\nHuman: hi\n\nAssistant: Sure, here.';
  const rejected = '\n\nHuman: hi\n\nAssistant: Sorry, no.';
  const ex = parsePreferenceRow({ chosen, rejected }, {}, src);
  assert.deepEqual(ex, {
    kind: 'text', implicitPrompt: true, prompt: '\n\nHuman: hi\n\nAssistant:', chosen: ' Sure, here.', rejected: ' Sorry, no.',
  });
});

test('commonTextPrefix: word boundaries, shared first words, one side a prefix of the other, identical', () => {
  assert.equal(commonTextPrefix('A: I think so', 'A: I do not'), 'A: I'.length); // TRL's cut too
  assert.equal(commonTextPrefix('A: Sure', 'A: Sorry'), 'A:'.length); // TRL would cut inside the word
  assert.equal(commonTextPrefix('A: I am', 'A: It is'), 'A:'.length); // a word end in one text only is no boundary
  // one text the other plus more: the prompt is all of the shorter, whose reply is empty (HH rows ending "Assistant:")
  assert.equal(commonTextPrefix('H: q\n\nA:', 'H: q\n\nA:  Sure'), 'H: q\n\nA:'.length);
  assert.equal(commonTextPrefix('H: q\n\nA: ', 'H: q\n\nA: Sure'), 'H: q\n\nA:'.length);
  assert.equal(commonTextPrefix('A:\n\n x', 'A:\n\n y'), 'A:'.length); // whole whitespace run goes to the responses
  assert.equal(commonTextPrefix('same', 'same'), 0);
  assert.equal(commonTextPrefix('abc', 'abd'), 0);
});

test('conversational rows go through the chat template the way TRL does', () => {
  const ex = parsePreferenceRow({
    prompt: [{ role: 'user', content: 'hi' }],
    chosen: [{ role: 'assistant', content: 'yes' }],
    rejected: [{ role: 'assistant', content: 'no' }],
  }, {}, src);
  assert.equal(ex.kind, 'conversation');
  assert.deepEqual(exampleToText(ex, tok), {
    prompt: '<s><|user|>\nhi</s>\n<|assistant|>\n',
    chosen: 'yes</s>\n',
    rejected: 'no</s>\n',
  });
});

test('implicit conversational prompt: the shared leading messages; system column prepended', () => {
  const turn = (role: string, content: string) => ({ role, content });
  const ex = parsePreferenceRow({
    chosen: [turn('user', 'a'), turn('assistant', 'b'), turn('user', 'c'), turn('assistant', 'good')],
    rejected: [turn('user', 'a'), turn('assistant', 'b'), turn('user', 'c'), turn('assistant', 'bad')],
    sys: 'Be brief.',
  }, { system: 'sys' }, src);
  assert.deepEqual(ex, {
    kind: 'conversation', implicitPrompt: true,
    prompt: [turn('system', 'Be brief.'), turn('user', 'a'), turn('assistant', 'b'), turn('user', 'c')],
    chosen: [turn('assistant', 'good')], rejected: [turn('assistant', 'bad')],
  });
  const text = exampleToText(ex, tok);
  assert.equal(text.prompt, '<s><|system|>\nBe brief.</s>\n<|user|>\na</s>\n<|assistant|>\nb</s>\n<|user|>\nc</s>\n<|assistant|>\n');
  assert.equal(text.chosen, 'good</s>\n');
});

test('a prompt ending with the assistant is continued, not closed (continue_final_message)', () => {
  const ex = parsePreferenceRow({
    prompt: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Well,' }],
    chosen: [{ role: 'assistant', content: ' yes' }],
    rejected: [{ role: 'assistant', content: ' no' }],
  }, {}, src);
  const text = exampleToText(ex, tok);
  assert.equal(text.prompt, '<s><|user|>\nhi</s>\n<|assistant|>\nWell,');
  // what follows is whatever the template renders after the open message (TRL: the common-prefix cut)
  assert.ok(text.chosen.endsWith(' yes</s>\n'));
});

test('strings with a system column, and column mapping (orca_dpo_pairs style)', () => {
  const ex = parsePreferenceRow({ system: 'S', question: 'Q', good: 'G', bad: 'B' }, { prompt: 'question', chosen: 'good', rejected: 'bad' }, src);
  assert.equal(ex.kind, 'conversation');
  assert.deepEqual(exampleToText(ex, tok), { prompt: '<s><|system|>\nS</s>\n<|user|>\nQ</s>\n<|assistant|>\n', chosen: 'G</s>\n', rejected: 'B</s>\n' });
});

test('multimodal-style text parts are joined', () => {
  const ex = parsePreferenceRow({
    prompt: [{ role: 'user', content: [{ type: 'text', text: 'h' }, { type: 'text', text: 'i' }] }],
    chosen: [{ role: 'assistant', content: 'y' }], rejected: [{ role: 'assistant', content: 'n' }],
  }, {}, src);
  assert.equal(ex.kind === 'conversation' && ex.prompt[0]!.content, 'hi');
});

test('unusable rows: empty side, identical sides', () => {
  const reason = (row: Record<string, unknown>) => unusableReason(parsePreferenceRow(row, {}, src));
  assert.equal(reason({ prompt: 'p', chosen: '', rejected: 'x' }), 'empty_response');
  assert.equal(reason({ prompt: 'p', chosen: 'x', rejected: '  \n' }), 'empty_response');
  assert.equal(reason({ prompt: 'p', chosen: null, rejected: 'x' }), 'empty_response');
  assert.equal(reason({ prompt: 'p', chosen: 'x', rejected: 'x' }), 'chosen_equals_rejected');
  assert.equal(reason({ chosen: 'A: x', rejected: 'A: x' }), 'chosen_equals_rejected');
  assert.equal(reason({ chosen: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }],
    rejected: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }] }), 'chosen_equals_rejected');
  assert.equal(reason({ prompt: 'p', chosen: 'x', rejected: 'y' }), null);
});

test('a missing field names the field, the fields that exist, and the option to map it', () => {
  assert.throws(() => parsePreferenceRow({ question: 'q', answer: 'a', rejected: 'r' }, {}, src), (err: Error) => {
    assert.equal(err.name, 'DataError');
    assert.match(err.message, /^rows\.jsonl:7: missing field "chosen"; the row has "question", "answer", "rejected"/);
    assert.match(err.message, /--chosen-column/);
    return true;
  });
  assert.throws(() => parsePreferenceRow({ chosen: 'c', rejected: 'r' }, { prompt: 'question' }, src), /missing field "question"/);
  assert.throws(() => parsePreferenceRow({ prompt: 'p', chosen: 5, rejected: 'r' }, {}, src), /field "chosen" must be a string or a list/);
  assert.throws(() => parsePreferenceRow({ prompt: [{ role: 'user' }], chosen: 'c', rejected: 'r' }, {}, src),
    /rows\.jsonl:7: field "prompt" message 0 must be \{role: string, content: string\}/);
});

test('a prompt repeated at the head of both conversations is not rendered twice (ultrafeedback_binarized)', () => {
  const user = { role: 'user', content: 'hi' };
  const ex = parsePreferenceRow({
    prompt: 'hi',
    chosen: [user, { role: 'assistant', content: 'yes' }],
    rejected: [user, { role: 'assistant', content: 'no' }],
  }, {}, src);
  assert.deepEqual(exampleToText(ex, tok), { prompt: '<s><|user|>\nhi</s>\n<|assistant|>\n', chosen: 'yes</s>\n', rejected: 'no</s>\n' });
  // a different prompt is kept as given: the conversations continue it
  const other = parsePreferenceRow({ prompt: 'hello', chosen: [user, { role: 'assistant', content: 'y' }], rejected: [user, { role: 'assistant', content: 'n' }] }, {}, src);
  assert.equal(other.kind === 'conversation' && other.chosen.length, 2);
});
