/// <reference lib="dom" />
// The page: choose a model and data, train in a Web Worker (web/worker.ts) with live curves, pause and resume,
// compare generations before and after, download the trained folder, the LoRA adapter or a GGUF file. Training runs
// on WebGPU when the worker finds an adapter, else (or when the user ticks #force-js, or with `?backend=js`) on the
// TypeScript backend; the line at the top says which, and why not WebGPU. `?selftest` runs the built-in demo end to
// end (`&steps=N` for a shorter run) and writes its result as JSON into #selftest-result (and the next-token logits
// of a prompt into #selftest-logits and the run's log records into #selftest-log, so a test can check the
// downloaded model and the losses against other runs); `?logits` writes those after every finished run.
import type { DataStats } from '../src/data/dataset.js';
import type { LogRecord, Progress } from '../src/train/trainer.js';
import type { DataSummary, TrainChoices, TrainSummary } from '../src/web/session.js';
import { chartSvg, type Series } from './charts.js';
import type { BackendChoice, BackendsReply, GgufDownloadDtype, ModelReply, Op, Requests, WorkerMessage } from './protocol.js';
import { SELFTEST } from './selftest.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html has no #${id}`);
  return el as T;
};
const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);

// ------------------------------------------------------------------------------------------------ the worker

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
let nextId = 1;

function call<K extends Op>(op: K, args: Requests[K]['args'], transfer: Transferable[] = []): Promise<Requests[K]['reply']> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
    worker.postMessage({ id, op, args }, transfer);
  });
}

worker.onmessage = (e: MessageEvent<WorkerMessage>) => {
  const m = e.data;
  if ('event' in m) {
    if (m.event === 'log') onLog(m.record);
    else onProgress(m.progress);
    return;
  }
  const waiting = pending.get(m.id);
  pending.delete(m.id);
  if (m.ok) waiting?.resolve(m.value);
  else waiting?.reject(new Error(m.error));
};
worker.onerror = (e) => showError('train-status', new Error(`the worker failed: ${e.message}`));

// ------------------------------------------------------------------------------------------------ status lines

function show(id: string, text: string): void {
  const el = $(id);
  el.classList.remove('error');
  el.textContent = text;
}

function showError(id: string, error: unknown): void {
  const el = $(id);
  el.classList.add('error');
  el.textContent = error instanceof Error ? error.message : String(error);
}

/** Runs an action of a button, reporting its error in a status line instead of the console. */
function guarded(statusId: string, action: () => Promise<void>): () => void {
  return () => void action().catch((error: unknown) => showError(statusId, error));
}

function describeStats(s: DataStats): string {
  const drops = Object.entries(s.dropped).filter(([, n]) => n > 0);
  const dropped = drops.reduce((sum, [, n]) => sum + n, 0);
  const reasons = drops.map(([k, n]) => `${k} ${n}`).join(', ');
  return `${s.rowsRead} rows read, ${s.rowsUsed} used, ${dropped} dropped${reasons ? ` (${reasons})` : ''}, ${s.truncated} truncated` +
    (s.conversational > 0 ? `, ${s.conversational} conversational` : '') + (s.implicitPrompt > 0 ? `, ${s.implicitPrompt} with implicit prompt` : '');
}

const data: { train?: DataSummary; eval?: DataSummary } = {};

function showData(): void {
  const lines = (['train', 'eval'] as const).flatMap((role) => {
    const d = data[role];
    return d === undefined ? [] : [`${role === 'train' ? 'training' : 'held-out'} ${d.file}: ${describeStats(d.stats)}`];
  });
  show('data-status', lines.join('\n') || 'No data yet.');
  const preview = data.train?.preview ?? [];
  const cell = (s: string): string => s.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  $('data-preview').innerHTML = preview.length === 0 ? '' : `<table><tr><th>prompt</th><th>chosen</th><th>rejected</th></tr>${
    preview.map((p) => `<tr><td>${cell(p.prompt)}</td><td>${cell(p.chosen)}</td><td>${cell(p.rejected)}</td></tr>`).join('')}</table>`;
}

// ------------------------------------------------------------------------------------------------ training options

const numberOrNull = (id: string): number | null => (input(id).value.trim() === '' ? null : Number(input(id).value));

function choices(): TrainChoices {
  const method = $<HTMLSelectElement>('method').value as NonNullable<TrainChoices['method']>;
  return {
    ...SELFTEST.choices,
    method,
    beta: method === 'sft' ? null : numberOrNull('beta'),
    learning_rate: Number(input('learning_rate').value),
    max_steps: Number(input('max_steps').value),
    per_device_train_batch_size: Number(input('per_device_train_batch_size').value),
    warmup_ratio: Number(input('warmup_ratio').value),
    max_length: Number(input('max_length').value),
    max_prompt_length: numberOrNull('max_prompt_length'),
    // about 60 points per curve
    logging_steps: Math.max(1, Math.round(Number(input('max_steps').value) / 60)),
    // the demo's response-only NLL suits its fixed prompts; other data trains as `orpo train` does (TRL's full)
    sft_scope: modelKind === 'demo' ? 'response' : 'full',
    ...loraChoices(),
  };
}

/** `orpo train`'s LoRA options from the form: lora_r unset (null) is full fine-tuning, as on the command line. */
function loraChoices(): Pick<TrainChoices, 'lora_r' | 'lora_alpha' | 'lora_dropout' | 'lora_target_modules'> {
  if (!input('lora').checked) return { lora_r: null };
  const targets = input('lora_target_modules').value.trim();
  return {
    lora_r: Number(input('lora_r').value), lora_alpha: Number(input('lora_alpha').value), lora_dropout: Number(input('lora_dropout').value),
    lora_target_modules: targets === '' ? null : targets,
  };
}

function showLoraSwitch(): void {
  $('lora-options').classList.toggle('on', input('lora').checked);
}

// ------------------------------------------------------------------------------------------------ curves

const records: LogRecord[] = [];
const CHARTS: { title: string; series: { key: string; label: string; color: string }[] }[] = [
  { title: 'loss', series: [{ key: 'loss', label: 'train', color: '#1f77b4' }, { key: 'eval_loss', label: 'held-out', color: '#d62728' }] },
  { title: 'log-probs', series: [{ key: 'logps/chosen', label: 'chosen', color: '#2ca02c' }, { key: 'logps/rejected', label: 'rejected', color: '#d62728' }] },
  { title: 'reward margin', series: [{ key: 'rewards/margins', label: 'train', color: '#1f77b4' }, { key: 'eval_rewards/margins', label: 'held-out', color: '#d62728' }] },
  { title: 'preference accuracy', series: [{ key: 'rewards/accuracies', label: 'train', color: '#1f77b4' }, { key: 'eval_rewards/accuracies', label: 'held-out', color: '#d62728' }] },
  { title: 'token accuracy (sft)', series: [{ key: 'mean_token_accuracy', label: 'train', color: '#1f77b4' }] },
];
let drawQueued = false;

function drawCharts(): void {
  drawQueued = false;
  $('charts').innerHTML = CHARTS.map((chart) => {
    const series: Series[] = chart.series.map((s) => ({
      label: s.label, color: s.color,
      points: records.filter((r) => r[s.key] !== undefined).map((r) => [r.step!, r[s.key]!] as [number, number]),
    }));
    return series.some((s) => s.points.length > 0) ? chartSvg(chart.title, series) : '';
  }).join('');
}

function onLog(record: LogRecord): void {
  records.push(record);
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(drawCharts);
  }
}

function onProgress(p: Progress): void {
  show('train-status', `step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  margin ${p.margin.toFixed(3)}  ` +
    `accuracy ${p.accuracy.toFixed(2)}  ${Math.round(p.tokensPerSecond)} tokens/s  ${Math.round(p.eta)} s left`);
}

// ------------------------------------------------------------------------------------------------ backend

/** what the worker found (null until it answers) */
let backends: BackendsReply | null = null;
const params = new URLSearchParams(location.search);

const backendChoice = (): BackendChoice => (input('force-js').checked ? 'js' : 'auto');

/** The top line: where the next run trains, and why not on WebGPU when it will not. */
function showBackend(): void {
  if (backends === null) return;
  const { js, webgpu } = backends;
  if (!webgpu.available) {
    show('backend', `Backend: ${js.note}.\nWebGPU not used: ${webgpu.reason}.`);
  } else if (backendChoice() === 'js') {
    show('backend', `Backend: ${js.note}.\nWebGPU is available (${webgpu.adapter}) but not used, as chosen below.`);
  } else {
    show('backend', `Backend: WebGPU (${webgpu.adapter}): the training steps run on a copy of the model in ` +
      'GPU memory; the weights come back after each run for generation and downloads, which use the TypeScript backend.' +
      (webgpu.isSoftware ? '\nThis adapter is a CPU implementation of WebGPU: the numbers are right, but the TypeScript backend ' +
        'may well be faster (tick the box below to use it).' : ''));
  }
}

// ------------------------------------------------------------------------------------------------ actions

let modelKind: 'demo' | 'folder' = 'demo';
let before: string | null = null;
/** the latest run's summary (null before the first): whether there is an adapter to download */
let trained: TrainSummary | null = null;

function showDownloads(): void {
  $<HTMLButtonElement>('download-adapter').disabled = (trained?.lora ?? null) === null;
}

async function loadDemoModel(size = SELFTEST.size): Promise<void> {
  show('model-status', 'creating the demo model…');
  const reply = await call('demoModel', { size, seed: SELFTEST.seed });
  modelKind = 'demo';
  input('max_length').value = String(SELFTEST.choices.max_length);
  input('max_prompt_length').value = String(SELFTEST.choices.max_prompt_length);
  modelLoaded(reply);
  await refreshData();
}

function modelLoaded({ description, loraTargets }: ModelReply): void {
  show('model-status', description);
  const target = input('lora_target_modules');
  target.placeholder = `${loraTargets.defaults.join(',')} (PEFT's default)`;
  target.title = `any of ${loraTargets.modules.join(', ')}, comma-separated, or all-linear`;
  trained = null;
  showDownloads();

  before = null;
  records.length = 0;
  drawCharts();
  $('gen-before').textContent = '';
  $('gen-after').textContent = '';
}

async function loadFolder(files: readonly File[]): Promise<void> {
  if (files.length === 0) return;
  show('model-status', `reading ${files.length} files…`);
  const name = files[0]!.webkitRelativePath.split('/')[0] || 'model folder';
  // a folder may come with files the model does not need (README, .gitattributes, PyTorch .bin): only these are read
  const wanted = files.filter((f) => /\.(json|safetensors|jinja)$/.test(f.name));
  const entries = await Promise.all(wanted.map(async (f) => [f.name, await f.arrayBuffer()] as [string, ArrayBuffer]));
  const reply = await call('folderModel', { name, files: entries }, entries.map(([, b]) => b));
  modelKind = 'folder';
  // a real model's rows are longer than the demo's: TRL's defaults (max_length 1024, the prompt cut as needed)
  input('max_length').value = '1024';
  input('max_prompt_length').value = '';
  modelLoaded(reply);
  await refreshData();
}

/** The data's counts under the current lengths and model (truncation and drops depend on both). */
async function refreshData(): Promise<void> {
  for (const role of ['train', 'eval'] as const) {
    const d = data[role];
    if (d !== undefined) data[role] = await call('dataSummary', { file: d.file, choices: choices() });
  }
  showData();
}

/** The files of a dropped folder (or dropped files), read through the entries API. */
async function droppedFiles(items: DataTransferItemList): Promise<File[]> {
  const files: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) files.push(await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail)));
    else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  const entries = [...items].map((item) => item.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  for (const entry of entries) await walk(entry);
  return files;
}

async function useDemoData(): Promise<void> {
  show('data-status', 'generating the demo data…');
  const d = await call('demoData', { seed: SELFTEST.seed, trainPairs: SELFTEST.trainPairs, evalPairs: SELFTEST.evalPairs, choices: choices() });
  data.train = d.train;
  data.eval = d.eval;
  showData();
}

async function useDataFile(role: 'train' | 'eval', file: File | undefined): Promise<void> {
  if (file === undefined) return;
  show('data-status', `reading ${file.name}…`);
  const bytes = await file.arrayBuffer();
  data[role] = await call('dataFile', { role, name: file.name, bytes, choices: choices() }, [bytes]);
  showData();
}

async function generate(into: 'gen-before' | 'gen-after'): Promise<string> {
  const prompt = input('prompt').value;
  const { text } = await call('generate', { prompt, maxNewTokens: Number(input('max_new_tokens').value), chat: input('chat').checked });
  $(into).textContent = `${prompt}⟨${text}⟩`;
  return text;
}

function setTraining(running: boolean, paused = false): void {
  $<HTMLButtonElement>('train').disabled = running;
  $<HTMLButtonElement>('pause').disabled = !running;
  $<HTMLButtonElement>('resume').disabled = running || !paused;
  // generation and downloads read the worker's host model, which a WebGPU run updates only when it returns (or
  // pauses): while it runs they would show the weights it started from
  for (const id of ['generate', 'download', 'download-gguf']) $<HTMLButtonElement>(id).disabled = running;
  if (running) $<HTMLButtonElement>('download-adapter').disabled = true;
  else showDownloads();
}

async function runTraining(fresh: boolean, options: TrainChoices = choices()): Promise<TrainSummary> {
  if (fresh) records.length = 0;
  if (before === null && input('prompt').value !== '') before = await generate('gen-before');
  setTraining(true);
  try {
    const summary = await call('train', { choices: options, backend: backendChoice() });
    setTraining(false, summary.paused);
    trained = summary;
    showDownloads();
    const acc = (r: LogRecord | null): string => (r?.['eval_rewards/accuracies'] ?? NaN).toFixed(3);
    const what = summary.lora === null ? 'every weight' : `LoRA r=${summary.lora.r} on ${summary.lora.modules.length} modules`;
    show('train-status', `${summary.paused ? 'paused at' : 'done:'} step ${summary.steps}/${summary.totalSteps} in ${summary.seconds.toFixed(1)} s on ${summary.backend} ` +
      `(${what}, ${summary.trainableParameters.toLocaleString('en')} trainable parameters)` +
      (summary.firstEval === null ? '' : `; held-out preference accuracy ${acc(summary.firstEval)} -> ${acc(summary.lastEval)}`));
    if (!summary.paused && input('prompt').value !== '') await generate('gen-after');
    if (!summary.paused && params.has('logits')) await showLogits(input('prompt').value);
    drawCharts();
    return summary;
  } catch (error) {
    setTraining(false);
    // the TypeScript backend holds any model the tab's memory holds; a GPU's bindings and memory are smaller
    if (backends?.webgpu.available === true && backendChoice() === 'auto') {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n(on WebGPU: tick "train on the TypeScript backend" at the top to train without it)`);
    }
    throw error;
  }
}

/** Hands bytes to the browser as a download named `name`. */
function save(bytes: ArrayBuffer, name: string, type: string): void {
  show('download-status', `${name}: ${(bytes.byteLength / 1024 ** 2).toFixed(2)} MiB`);
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const modelFolderName = (): string => (modelKind === 'demo' ? 'orpo-demo-model' : 'orpo-trained-model');

async function download(what: 'model' | 'adapter'): Promise<void> {
  show('download-status', 'packing…');
  const folder = what === 'model' ? modelFolderName() : `${modelFolderName()}-lora`;
  const { bytes } = await call('zip', { folder, dtype: $<HTMLSelectElement>('dtype').value as 'F32' | 'BF16', what });
  save(bytes, `${folder}.zip`, 'application/zip');
}

async function downloadGguf(): Promise<void> {
  show('download-status', 'writing the GGUF file…');
  const dtype = $<HTMLSelectElement>('gguf-dtype').value as GgufDownloadDtype;
  const { bytes } = await call('gguf', { name: modelFolderName(), dtype });
  save(bytes, `${modelFolderName()}-${dtype}.gguf`, 'application/octet-stream');
}

// ------------------------------------------------------------------------------------------------ self-test

/** `&steps=N`: a shorter self-test (a software WebGPU adapter takes seconds per step), for checks rather than accuracy */
function selftestChoices(): TrainChoices {
  const steps = params.get('steps');
  if (steps === null) return SELFTEST.choices;
  const n = Number(steps);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`?steps=${steps}: a whole number of steps >= 1, please`);
  return { ...SELFTEST.choices, max_steps: n, logging_steps: 1 };
}

async function selftest(): Promise<void> {
  const started = performance.now();
  const options = selftestChoices();
  await loadDemoModel(SELFTEST.size);
  await useDemoData();
  input('prompt').value = SELFTEST.prompt;
  const summary = await runTraining(true, options);
  const seconds = (performance.now() - started) / 1000;
  const accuracy = (r: LogRecord | null): number | null => r?.['eval_rewards/accuracies'] ?? null;
  $('selftest-result').textContent = JSON.stringify({
    backend: summary.backend, steps: summary.steps, seconds: Number(seconds.toFixed(1)),
    before: { 'eval_rewards/accuracies': accuracy(summary.firstEval) }, after: { 'eval_rewards/accuracies': accuracy(summary.lastEval) },
  });
  await showLogits(SELFTEST.prompt);
}

/**
 * The next-token logits of the prompt under the model as trained (adapters attached after a LoRA run), into the
 * hidden #selftest-logits, and the run's log records into #selftest-log: what a test checks a download and the
 * losses of another backend against. The self-test writes them; `?logits` writes them after every finished run.
 */
async function showLogits(prompt: string): Promise<void> {
  $('selftest-log').textContent = JSON.stringify(records);
  $('selftest-logits').textContent = JSON.stringify({ prompt, ...(await call('logits', { prompt })) });
}

// ------------------------------------------------------------------------------------------------ wiring

$('load-demo').onclick = guarded('model-status', () => loadDemoModel({
  hiddenSize: Number(input('demo-hidden').value), layers: Number(input('demo-layers').value),
  heads: Math.max(1, Math.round(Number(input('demo-hidden').value) / 8)), intermediateSize: 4 * Number(input('demo-hidden').value),
}));
input('folder-input').onchange = guarded('model-status', () => loadFolder([...input('folder-input').files ?? []]));
input('files-input').onchange = guarded('model-status', () => loadFolder([...input('files-input').files ?? []]));
const drop = $('drop');
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const items = e.dataTransfer?.items;
  if (items !== undefined) guarded('model-status', async () => loadFolder(await droppedFiles(items)))();
};
$('demo-data').onclick = guarded('data-status', useDemoData);
for (const id of ['max_length', 'max_prompt_length']) input(id).onchange = guarded('data-status', refreshData);
input('train-file').onchange = guarded('data-status', () => useDataFile('train', input('train-file').files?.[0]));
input('eval-file').onchange = guarded('data-status', () => useDataFile('eval', input('eval-file').files?.[0]));
$('train').onclick = guarded('train-status', async () => void (await runTraining(true)));
$('pause').onclick = guarded('train-status', async () => void (await call('pause', {})));
$('resume').onclick = guarded('train-status', async () => void (await runTraining(false)));
$('generate').onclick = guarded('train-status', async () => void (await generate(before === null ? 'gen-before' : 'gen-after')));
$('download').onclick = guarded('download-status', () => download('model'));
$('download-adapter').onclick = guarded('download-status', () => download('adapter'));
$('download-gguf').onclick = guarded('download-status', downloadGguf);

// the form starts at the self-test's settings, which train the demo model in well under a minute
for (const key of ['beta', 'learning_rate', 'max_steps', 'per_device_train_batch_size', 'warmup_ratio', 'max_length', 'max_prompt_length'] as const) {
  input(key).value = String(SELFTEST.choices[key]);
}
input('demo-hidden').value = String(SELFTEST.size.hiddenSize);
input('demo-layers').value = String(SELFTEST.size.layers);
input('prompt').value = SELFTEST.prompt;
input('lora').onchange = showLoraSwitch;
// `?backend=js`: the TypeScript backend even where WebGPU is available (as ticking the box does)
input('force-js').checked = params.get('backend') === 'js';
input('force-js').onchange = showBackend;

const hello = call('hello', {}).then(({ lora, ...found }) => {
  backends = found;
  input('force-js').disabled = !found.webgpu.available;
  showBackend();
  input('lora_r').value = String(lora.r);
  input('lora_alpha').value = String(lora.alpha);
  input('lora_dropout').value = String(lora.dropout);
  showLoraSwitch();
});
guarded('backend', () => hello)();
if (params.has('selftest')) {
  guarded('selftest-result', selftest)();
} else {
  guarded('model-status', () => loadDemoModel())();
}
