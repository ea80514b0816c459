// Fuzz cases for everything on the data side: every dataset format (JSON Lines, JSON arrays, JSON objects of
// splits, JSON Lines named .json, Parquet with several codecs and nested columns, each gzipped too), tokenizer.json,
// tokenizer_config.json and chat templates. Each case starts from a valid file, mutates it (bytes, or structure for
// JSON), writes it to disk and names the fuzz target that reads it the way `orpo train` does. Shared by the quick
// suite (test/fuzz-data.test.ts) and the long run (bench/fuzz.ts).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { TINY_CHAT_TEMPLATE, tinyTokenizerFiles } from '../data-tiny-tokenizer.js';
import { Rng, concatBytes, flipBits, mutateBytes, mutateJson, splice, type FuzzCase, type Json } from './fuzz.js';
import { messageListSchema } from './test-files.js';

/** Rows in every shape the formats accept: explicit prompt, implicit prompt, conversations, unicode, a system turn. */
const ROWS: Json[] = [
  { prompt: 'What is 2+2?', chosen: ' 4', rejected: ' 5' },
  { chosen: 'Human: hi\n\nAssistant: hello', rejected: 'Human: hi\n\nAssistant: go away' },
  {
    prompt: [{ role: 'user', content: 'Name a colour' }],
    chosen: [{ role: 'assistant', content: 'Blue' }],
    rejected: [{ role: 'assistant', content: 'Seven' }],
  },
  { prompt: 'Ünïcödé 日本語 🙂?', chosen: ' ja', rejected: ' nein', system: 'Be brief.' },
  { prompt: 'Q', chosen: ' same', rejected: ' same' },
];

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
const decoder = new TextDecoder();
const jsonl = (rows: Json[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** Parquet files as hyparquet-writer writes them: strings in three row groups with each codec, and nested messages. */
function parquetSeeds(): Uint8Array[] {
  const flat = ROWS.filter((r) => typeof (r as { chosen: unknown }).chosen === 'string') as Record<string, string>[];
  const column = (name: string) => ({ name, data: flat.map((r) => r[name] ?? null), type: 'STRING' as const });
  const columns = ['prompt', 'chosen', 'rejected'].map(column);
  const seeds = [
    parquetWriteBuffer({ columnData: columns, rowGroupSize: 2 }),
    parquetWriteBuffer({ columnData: columns, codec: 'UNCOMPRESSED' }),
    parquetWriteBuffer({ columnData: columns, codec: 'GZIP', compressors: { GZIP: (b: Uint8Array) => gzipSync(b) } }),
  ];
  const turn = (role: string, content: string) => ({ role, content });
  seeds.push(parquetWriteBuffer({
    schema: [{ name: 'root', num_children: 3 }, ...messageListSchema('prompt'), ...messageListSchema('chosen'), ...messageListSchema('rejected')],
    columnData: [
      { name: 'prompt', data: [[turn('user', 'hi')], [turn('user', 'yo')]] },
      { name: 'chosen', data: [[turn('assistant', 'a')], [turn('assistant', 'c')]] },
      { name: 'rejected', data: [[turn('assistant', 'b')], [turn('assistant', 'd')]] },
    ],
  }));
  return seeds.map((buffer) => new Uint8Array(buffer));
}

/** Whole Jinja constructs that have made interpreters loop, recurse or allocate, inserted into templates. */
const TEMPLATE_CONSTRUCTS = [
  '{% for i in range(100000) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}', '{{ range(1000000000) }}',
  '{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}',
  '{% set s = "ab" %}{% for k in range(60) %}{% set s = s + s %}{% endfor %}{{ s }}', '{{ messages[0].content * 3 }}',
  '{% set ns = namespace(a=[]) %}{% for m in messages %}{% set ns.a = ns.a + [m] %}{% endfor %}',
  '{{ messages | tojson }}', '{{ (messages | map(attribute="content") | join("")) | length }}',
  '{% for m in messages %}{{ m.content }}{% endfor %}', '{{ raise_exception("no") }}', '{{ messages[-1].role }}',
];
/** Fragments that break the syntax. */
const TEMPLATE_FRAGMENTS = ['{% if %}', '{{', '}}', '{%', '%}', '{% endfor %}', '{% for m in messages %}'];

/** A tokenizer folder: tokenizer.json, tokenizer_config.json, and chat_template.jinja when one is given. */
function writeModelDir(path: string, files: { tokenizer: string | Uint8Array; config: string | Uint8Array; template?: string | Uint8Array }): void {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'tokenizer.json'), files.tokenizer);
  writeFileSync(join(path, 'tokenizer_config.json'), files.config);
  if (files.template !== undefined) writeFileSync(join(path, 'chat_template.jinja'), files.template);
}

/** One kind of fuzz case: how to make one from a seeded generator, into a folder. */
export interface DataFuzzKind {
  name: string;
  make(rng: Rng, path: string): FuzzCase;
}

/** Byte mutations, or (for a third of cases) bit flips alone, which keep lengths and so reach deeper. */
function mutated(bytes: Uint8Array, rng: Rng): { bytes: Uint8Array; label: string } {
  if (rng.chance(0.33)) return { bytes: flipBits(1 + rng.int(4))(bytes, rng), label: 'flipBits' };
  const m = mutateBytes(bytes, rng, 4);
  return { bytes: m.bytes, label: m.steps.join(',') };
}

/** A JSON document with one to three structural mutations. */
function mutatedJson(doc: Json, rng: Rng): { doc: Json; label: string } {
  const steps: string[] = [];
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const m = mutateJson(doc, rng);
    doc = m.doc;
    steps.push(m.step.slice(0, 60));
  }
  return { doc, label: steps.join('; ') };
}

function datasetCase(path: string, bytes: Uint8Array, label: string, group: string): FuzzCase {
  writeFileSync(path, bytes);
  return { target: 'loadPairs', input: path, file: path, label, group };
}

/** Every kind of data-side fuzz case. */
export function dataFuzzKinds(): DataFuzzKind[] {
  const parquet = parquetSeeds();
  const tiny = tinyTokenizerFiles({ chatTemplate: TINY_CHAT_TEMPLATE });
  const textSeeds = {
    jsonl: encode(jsonl(ROWS)),
    json: encode(JSON.stringify(ROWS, null, 1)),
    'json-minified': encode(JSON.stringify(ROWS)),
    'json-splits': encode(JSON.stringify({ train: ROWS, version: 1 })),
    'json-lines': encode(jsonl(ROWS)),
  };
  const kinds: DataFuzzKind[] = [];
  for (const [name, seed] of Object.entries(textSeeds)) {
    const ext = name === 'jsonl' ? 'jsonl' : 'json';
    kinds.push({
      name,
      make: (rng, path) => {
        const m = mutated(rng.chance(0.1) ? splice(seed, seed, rng) : seed, rng);
        return datasetCase(`${path}.${ext}`, m.bytes, m.label, name);
      },
    });
    kinds.push({
      name: `${name}.gz`,
      make: (rng, path) => {
        // either valid gzip of mutated text, or mutated gzip (a cut or corrupt stream)
        const m = rng.chance(0.5) ? { bytes: gzipSync(mutated(seed, rng).bytes), label: 'text' } : mutated(gzipSync(seed), rng);
        return datasetCase(`${path}.${ext}.gz`, m.bytes, m.label, `${name}.gz`);
      },
    });
  }
  kinds.push({
    name: 'json-structure',
    make: (rng, path) => {
      const m = mutatedJson(ROWS, rng);
      const text = rng.chance(0.5) ? JSON.stringify(m.doc) : Array.isArray(m.doc) ? jsonl(m.doc) : JSON.stringify(m.doc);
      return datasetCase(`${path}.${rng.chance(0.5) ? 'json' : 'jsonl'}`, encode(text), m.label, 'json-structure');
    },
  });
  kinds.push({
    name: 'parquet',
    make: (rng, path) => {
      const m = mutated(rng.pick(parquet), rng);
      return datasetCase(`${path}.parquet`, m.bytes, m.label, 'parquet');
    },
  });
  kinds.push({
    name: 'parquet.gz',
    make: (rng, path) => {
      const seed = rng.pick(parquet);
      const m = rng.chance(0.5) ? { bytes: gzipSync(mutated(seed, rng).bytes), label: 'parquet' } : mutated(gzipSync(seed), rng);
      return datasetCase(`${path}.parquet.gz`, m.bytes, m.label, 'parquet.gz');
    },
  });
  const tokenizerCase = (path: string, label: string, group: string, files: Parameters<typeof writeModelDir>[1]): FuzzCase => {
    writeModelDir(path, files);
    return { target: 'useTokenizer', input: { dir: path }, file: path, label, group };
  };
  kinds.push({
    name: 'tokenizer.json',
    make: (rng, path) => {
      const config = JSON.stringify(tiny.config);
      if (rng.chance(0.3)) {
        const m = mutated(encode(JSON.stringify(tiny.tokenizer)), rng);
        return tokenizerCase(path, m.label, 'tokenizer.json', { tokenizer: m.bytes, config });
      }
      const m = mutatedJson(tiny.tokenizer as Json, rng);
      return tokenizerCase(path, m.label, 'tokenizer.json', { tokenizer: JSON.stringify(m.doc), config });
    },
  });
  kinds.push({
    name: 'tokenizer_config.json',
    make: (rng, path) => {
      const m = mutatedJson(tiny.config as Json, rng);
      return tokenizerCase(path, m.label, 'tokenizer_config.json', { tokenizer: JSON.stringify(tiny.tokenizer), config: JSON.stringify(m.doc) });
    },
  });
  kinds.push({
    name: 'chat template',
    make: (rng, path) => {
      let template = encode(TINY_CHAT_TEMPLATE);
      const steps: string[] = [];
      for (let n = 1 + rng.int(4); n > 0; n--) {
        if (rng.chance(0.7)) {
          // constructs go between the template's own tags (where they parse); fragments anywhere
          const construct = rng.chance(0.8);
          const text = decoder.decode(template);
          const gaps = [0, text.length, ...[...text.matchAll(/[%}]\}/g)].map((m) => m.index! + 2)];
          const at = construct ? encode(text.slice(0, rng.pick(gaps))).length : rng.int(template.length + 1);
          const piece = construct ? rng.pick(TEMPLATE_CONSTRUCTS) : rng.pick(TEMPLATE_FRAGMENTS);
          template = concatBytes(template.subarray(0, at), encode(piece), template.subarray(at));
          steps.push(construct ? 'construct' : 'fragment');
        } else {
          const m = mutated(template, rng);
          template = m.bytes;
          steps.push(m.label);
        }
      }
      const config = { ...tiny.config };
      delete config.chat_template;
      return tokenizerCase(path, steps.join(','), 'chat template', {
        tokenizer: JSON.stringify(tiny.tokenizer), config: JSON.stringify(config), template,
      });
    },
  });
  return kinds;
}

/**
 * Cases round-robin over the kinds, each from its own generator forked from the seed, so case i of a seed is
 * always the same file. Endless when no count is given (bench/fuzz.ts stops at its deadline).
 */
export function* dataFuzzCases(opts: { seed: number; dir: string; perKind?: number }): Generator<FuzzCase> {
  const kinds = dataFuzzKinds();
  const root = new Rng(opts.seed);
  mkdirSync(opts.dir, { recursive: true });
  for (let i = 0; opts.perKind === undefined || i < opts.perKind * kinds.length; i++) {
    const kind = kinds[i % kinds.length]!;
    yield kind.make(root.fork(i), join(opts.dir, `case-${i}-${kind.name.replace(/[^a-z0-9_]+/gi, '_')}`));
  }
}
