// `orpo data stats` / `orpo data show` on a small file with the tiny tokenizer, whose numbers can be worked out
// by hand: prompts "Q1:".."Q5:" are 3 byte tokens, responses are their bytes (" a" is one token) + EOS.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { runDataCommand } from '../src/cli/data.js';
import { tinyTokenizerDir } from './data-tiny-tokenizer.js';

const dir = mkdtempSync(join(tmpdir(), 'orpo-data-cli-'));
const dataset = join(dir, 'rows.jsonl');
writeFileSync(dataset, [
  { prompt: 'Q1:', chosen: ' a', rejected: ' no' },
  { prompt: 'Q2:', chosen: ' yes', rejected: ' nope' },
  { prompt: 'Q3:', chosen: ' x', rejected: ' y' },
  { prompt: 'Q4:', chosen: ' same', rejected: ' same' },
  { prompt: 'Q5:', chosen: ' last', rejected: ' first' },
].map((r) => JSON.stringify(r)).join('\n'));
// a tokenizer without bos_token (like Qwen's), so no BOS leads the prompts and they are exactly their bytes
const model = tinyTokenizerDir({ bosToken: false });
after(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(model, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const code = await runDataCommand(argv, (text) => chunks.push(text));
  return { code, out: chunks.join('') };
}

test('data stats --json: counts, token percentiles and padding', async () => {
  const { code, out } = await run(['stats', '--dataset', dataset, '--model', model, '--json', '--per-device-train-batch-size', '2']);
  assert.equal(code, 0);
  const report = JSON.parse(out);
  assert.deepEqual(
    [report.stats.rowsRead, report.stats.rowsUsed, report.stats.dropped.chosen_equals_rejected, report.stats.truncated],
    [5, 4, 1, 0],
  );
  // chosen lengths [2 (" a"+EOS), 5 (" yes"+EOS), 3, 6] -> nearest-rank p50 = 3, max = 6, mean 4
  assert.deepEqual([report.tokens.chosen.p50, report.tokens.chosen.max, report.tokens.chosen.mean], [3, 6, 4]);
  assert.deepEqual([report.tokens.prompt.min, report.tokens.prompt.max], [3, 3]);
  // pair lengths (prompt + longer) = [3+4, 3+6, 3+3, 3+7] = [7, 9, 6, 10]; batch {7,9}: 4 rows x 9 = 36 slots,
  // real = 2*3+2+4 + 2*3+5+6 = 29; batch {6,10}: 40 slots, real = 2*3+3+3 + 2*3+6+7 = 31 -> pads 16/76
  assert.equal(report.padding.file_order.toFixed(6), (16 / 76).toFixed(6));
  assert.equal(report.padding.batch_size, 2);
});

test('data stats prints a readable summary; data show decodes the first rows from their ids', async () => {
  const stats = await run(['stats', '--dataset', dataset, '--model', model]);
  assert.match(stats.out, /rows +5 read, 4 used, 1 dropped \(chosen_equals_rejected 1\)/);
  assert.match(stats.out, /prompt\+longer +7 +10 +10 +10 +8\.0/);
  const show = await run(['show', '--dataset', dataset, '--model', model, '-n', '2']);
  assert.equal(show.code, 0);
  assert.match(show.out, /── row 1 \(.*rows\.jsonl:1\) ── prompt 3 \+ chosen 2 \/ rejected 4 tokens\n\[prompt: 3 tokens\]\nQ1:\n\[chosen: 2 tokens\]\n a<\/s>\n/);
  assert.match(show.out, /── row 2 /);
  assert.doesNotMatch(show.out, /── row 3 /);
  const json = JSON.parse((await run(['show', '--dataset', dataset, '--model', model, '-n', '1', '--json'])).out);
  assert.deepEqual(json[0].chosen, { text: ' a</s>', ids: [256, 259] });
});

test('data show counts rows from 1 in every format: a JSON Lines line, a JSON array row and a Parquet row alike', async () => {
  const rows = [{ prompt: 'Q1:', chosen: ' a', rejected: ' no' }, { prompt: 'Q2:', chosen: ' yes', rejected: ' nope' }];
  const array = join(dir, 'rows.json');
  writeFileSync(array, JSON.stringify(rows));
  const parquet = join(dir, 'rows.parquet');
  parquetWriteFile({ filename: parquet, columnData: (['prompt', 'chosen', 'rejected'] as const).map((name) => ({ name, data: rows.map((r) => r[name]), type: 'STRING' as const })) });
  for (const [file, first, second] of [[dataset, 'rows.jsonl:1', 'rows.jsonl:2'], [array, 'rows.json:1', 'rows.json:1'], [parquet, 'rows.parquet row 1', 'rows.parquet row 2']] as const) {
    const show = (await run(['show', '--dataset', file, '--model', model, '-n', '2'])).out;
    assert.ok(show.includes(`── row 1 (${join(dir, first)})`), `${file}: ${show.slice(0, 80)}`);
    assert.ok(show.includes(`── row 2 (${join(dir, second)})`), `${file}: ${show}`);
  }
});

test('data: help, usage errors and data errors', async () => {
  assert.equal((await run(['--help'])).code, 0);
  assert.match((await run(['--help'])).out, /orpo data stats --dataset FILE --model DIR/);
  assert.equal((await run([])).code, 2);
  await assert.rejects(run(['stats', '--dataset', dataset]), { name: 'OptionError', message: /needs --dataset FILE and --model DIR/ });
  await assert.rejects(run(['count', '--dataset', dataset]), { name: 'OptionError' });
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(broken, '{"prompt": "Q", "chosen": " a", "rejected": " b"}\n{oops\n');
  await assert.rejects(run(['stats', '--dataset', broken, '--model', model]), { name: 'DataError', message: /broken\.jsonl:2: not valid JSON/ });
  const limited = JSON.parse((await run(['stats', '--dataset', dataset, '--model', model, '--limit', '2', '--json'])).out);
  assert.deepEqual([limited.stats.rowsRead, limited.stats.rowsUsed], [2, 2]);
  const skipped = JSON.parse((await run(['stats', '--dataset', broken, '--model', model, '--skip-invalid', '--json'])).out);
  assert.equal(skipped.stats.dropped.invalid, 1);
});
