// A seeded fuzz harness for everything that reads a user's files. Two halves:
//
//   mutators   deterministic from a seed: byte-level (bit flips, truncation, byte insert/delete, overwrites with
//              boundary values, range copies, splices of two inputs) and structure-aware JSON mutations (a value
//              replaced by a hostile one: huge/negative/fractional numbers, wrong types, deep nesting, long strings,
//              keys removed or added), so both "bytes a disk can hold" and "JSON a tool could write" are covered.
//   runner     each case runs in a worker_thread with a heap limit and a per-case timeout; a worker that hangs, runs
//              out of memory or dies is terminated and replaced, so one bad case never takes the run with it. Each
//              case is classified: ok, clean-error (an Error whose message names the file), or FAILURE.
//
// A target module (compiled JS) exports async functions by name; a case names one, carries a structured-clonable
// input and the file its error must name. The same module file is the worker's entry point (see the bottom).

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: nothing to pick from');
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** a new generator whose sequence depends on this one's seed and a label, so cases stay independent */
  fork(label: string | number): Rng {
    let h = this.seed ^ 0x9e3779b9;
    for (const c of String(label)) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
    return new Rng(h >>> 0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Byte mutators: each returns a new array and never changes its input

export type ByteMutator = (input: Uint8Array, rng: Rng) => Uint8Array;

/** A copy as a plain Uint8Array: Buffer's slice() is a view, and mutating it would change the caller's bytes. */
const copyOf = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes);

/** Values at the edges of integer types and of ASCII/UTF-8, which parsers most often get wrong. */
const BOUNDARY_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x22, 0x5c, 0x0a, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d, 0xc0, 0xed];
const BOUNDARY_WORDS = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fff, 0x8000, 0xffff, 0x100, 0x10000];

export const flipBits = (count = 3): ByteMutator => (input, rng) => {
  const out = copyOf(input);
  if (out.length === 0) return out;
  for (let i = 0; i < count; i++) out[rng.int(out.length)]! ^= 1 << rng.int(8);
  return out;
};

export const truncate: ByteMutator = (input, rng) => copyOf(input.subarray(0, rng.int(input.length + 1)));

export const insertBytes: ByteMutator = (input, rng) => {
  const at = rng.int(input.length + 1);
  const n = 1 + rng.int(rng.chance(0.1) ? 256 : 8);
  const inserted = Uint8Array.from({ length: n }, () => (rng.chance(0.5) ? rng.pick(BOUNDARY_BYTES) : rng.int(256)));
  return concatBytes(input.subarray(0, at), inserted, input.subarray(at));
};

export const deleteBytes: ByteMutator = (input, rng) => {
  if (input.length === 0) return copyOf(input);
  const at = rng.int(input.length);
  const n = 1 + rng.int(Math.min(64, input.length - at));
  return concatBytes(input.subarray(0, at), input.subarray(at + n));
};

/** one byte, or a little-endian 32-bit word, set to a boundary value (lengths, offsets and counts live in those) */
export const overwriteBoundary: ByteMutator = (input, rng) => {
  const out = copyOf(input);
  if (out.length === 0) return out;
  if (out.length >= 4 && rng.chance(0.5)) {
    const at = rng.int(out.length - 3);
    new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(at, rng.pick(BOUNDARY_WORDS), true);
  } else out[rng.int(out.length)] = rng.pick(BOUNDARY_BYTES);
  return out;
};

/** a range of the input copied over (or into) another place of it: repeated structures, overlapping lengths */
export const duplicateRange: ByteMutator = (input, rng) => {
  if (input.length < 2) return copyOf(input);
  const from = rng.int(input.length);
  const n = 1 + rng.int(Math.min(128, input.length - from));
  const at = rng.int(input.length + 1);
  return concatBytes(input.subarray(0, at), input.subarray(from, from + n), input.subarray(at));
};

/** the head of one input joined to the tail of another (two valid files make a plausible invalid one) */
export function splice(a: Uint8Array, b: Uint8Array, rng: Rng): Uint8Array {
  return concatBytes(a.subarray(0, rng.int(a.length + 1)), b.subarray(rng.int(b.length + 1)));
}

export const BYTE_MUTATORS: Readonly<Record<string, ByteMutator>> = {
  flipBit: flipBits(1),
  flipBits: flipBits(3),
  truncate,
  insertBytes,
  deleteBytes,
  overwriteBoundary,
  duplicateRange,
};

/** 1 to maxSteps random byte mutations in a row; returns the bytes and the names of the steps, for reports */
export function mutateBytes(input: Uint8Array, rng: Rng, maxSteps = 3): { bytes: Uint8Array; steps: string[] } {
  const names = Object.keys(BYTE_MUTATORS);
  let bytes = input;
  const steps: string[] = [];
  for (let n = 1 + rng.int(maxSteps); n > 0; n--) {
    const name = rng.pick(names);
    bytes = BYTE_MUTATORS[name]!(bytes, rng);
    steps.push(name);
  }
  return { bytes, steps };
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Structure-aware JSON mutations

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that have broken JSON consumers: sizes that allocate, ids past every array, wrong types, deep nesting. */
export function hostileJsonValue(rng: Rng): Json {
  const deep = (depth: number): Json => {
    let v: Json = [];
    for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { a: v };
    return v;
  };
  const choices: (() => Json)[] = [
    () => 0,
    () => -1,
    () => 1e9,
    () => -1e9,
    () => 2 ** 53,
    () => 1e308,
    () => 0.5,
    () => -0.000001,
    () => 4294967296,
    () => '',
    () => 'x'.repeat(1 + rng.int(100_000)),
    () => '\u0000\ud800\uffff',
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => deep(1 + rng.int(1000)),
    () => Array.from({ length: 1 + rng.int(1000) }, () => rng.int(1000)),
  ];
  return rng.pick(choices)();
}

/**
 * Paths to values inside doc (the root included, as []), at most `limit` of them and none deeper than `maxDepth`:
 * so mutations never land inside a deeply nested value an earlier one made and nest it deeper still.
 */
function jsonPaths(doc: Json, limit = 10_000, maxDepth = 64): (string | number)[][] {
  const paths: (string | number)[][] = [];
  const walk = (v: Json, path: (string | number)[]): void => {
    if (paths.length >= limit || path.length > maxDepth) return;
    paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(doc, []);
  return paths;
}

/**
 * One structural change to a copy of doc: a value replaced by a hostile one, a key deleted, a key added, an array
 * element duplicated or removed, or a value's type swapped (number<->string). Returns the new document and what
 * was done (for reports).
 */
export function mutateJson(doc: Json, rng: Rng): { doc: Json; step: string } {
  const copy = structuredClone(doc);
  const paths = jsonPaths(copy);
  const path = rng.pick(paths);
  const parentPath = path.slice(0, -1);
  const key = path[path.length - 1];
  const get = (p: (string | number)[]): Json => p.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, copy);
  const where = path.join('.') || '(root)';
  if (key === undefined) return { doc: hostileJsonValue(rng), step: 'replace root' };
  const parent = get(parentPath) as Record<string | number, Json> | Json[];
  const current = get(path);
  const op = rng.int(5);
  if (op === 0 && !Array.isArray(parent)) {
    delete (parent as Record<string, Json>)[key as string];
    return { doc: copy, step: `delete ${where}` };
  }
  if (op === 1 && Array.isArray(parent)) {
    if (rng.chance(0.5)) parent.splice(key as number, 1);
    else parent.splice(key as number, 0, structuredClone(current));
    return { doc: copy, step: `resize array at ${where}` };
  }
  if (op === 2 && (typeof current === 'number' || typeof current === 'string')) {
    (parent as Record<string | number, Json>)[key] = typeof current === 'number' ? String(current) : Number(current) || 7;
    return { doc: copy, step: `swap type at ${where}` };
  }
  if (op === 3 && current !== null && typeof current === 'object' && !Array.isArray(current)) {
    current[`fuzz_${rng.int(1000)}`] = hostileJsonValue(rng);
    return { doc: copy, step: `add key in ${where}` };
  }
  (parent as Record<string | number, Json>)[key] = hostileJsonValue(rng);
  return { doc: copy, step: `replace ${where}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Runner

/** What a target module exports: named functions run on a case's input inside the worker. */
export type FuzzTarget<I = unknown> = (input: I) => unknown;

export interface FuzzCase<I = unknown> {
  /** the exported function of the target module to run */
  target: string;
  /** structured-clonable input handed to it (usually the path of a file the case generator wrote) */
  input: I;
  /** the file a clean error must name (its full path or its base name) */
  file: string;
  /** how the case was made, for reports: "flipBits,truncate" */
  label?: string;
  /** what the case is counted under in reports (default: target), e.g. the input format "parquet.gz" */
  group?: string;
}

/** ok: a result. clean-error: an Error naming the file. Anything else is a failure of the code under test. */
export type FuzzOutcome = 'ok' | 'clean-error' | 'failure';

export type FailureKind =
  | 'hang' // no answer within the timeout
  | 'oom' // the worker ran out of its heap
  | 'crash' // the worker died (exit, native abort, uncaught exception)
  | 'unhandled-rejection' // a promise rejected with nobody awaiting it (kills a long-lived process)
  | 'stack-trace' // an engine error (TypeError, RangeError...) escaped: the user sees a stack, not a message
  | 'unnamed' // the message does not name the file
  | 'not-an-error' // something other than an Error was thrown
  | 'too-long'; // the message quotes untrusted data at length

export interface FuzzResult {
  case: FuzzCase;
  outcome: FuzzOutcome;
  failure?: FailureKind;
  /** the error's message, or what happened to the worker */
  message?: string;
  ms: number;
}

export interface FuzzRunOptions {
  /** the compiled target module (a file URL or path) whose exports the cases name */
  module: URL | string;
  /** per case; a case still running then is a hang and its worker is replaced (default 5000) */
  timeoutMs?: number;
  /** V8 old-generation limit of each worker: a case that needs more is an out-of-memory failure (default 512) */
  maxOldGenerationSizeMb?: number;
  /** workers running cases at once (default 1) */
  concurrency?: number;
  /** stop starting new cases after this time (Date.now() value); cases are pulled lazily from the iterable */
  deadline?: number;
  /** messages longer than this are 'too-long' failures (default 2000 characters) */
  maxMessageLength?: number;
  /** called after each case, e.g. to print failures as they come */
  onResult?: (result: FuzzResult) => void;
}

export interface FuzzReport {
  results: FuzzResult[];
  failures: FuzzResult[];
  /** cases per group (target when a case names none) by outcome */
  counts: Record<string, Record<FuzzOutcome, number>>;
}

/** JavaScript's own error classes: one escaping means code under test did not check something. */
const ENGINE_ERRORS = new Set(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'URIError', 'InternalError']);

interface ThrownReport {
  isError: boolean;
  name: string;
  message: string;
}

/** The classification of a thrown value for a case (exported so tests of a single input can use the same rules). */
export function classifyError(
  thrown: ThrownReport,
  file: string,
  maxMessageLength = 2000,
): { outcome: FuzzOutcome; failure?: FailureKind } {
  if (!thrown.isError) return { outcome: 'failure', failure: 'not-an-error' };
  if (ENGINE_ERRORS.has(thrown.name) || /\n\s+at /.test(thrown.message)) return { outcome: 'failure', failure: 'stack-trace' };
  if (!thrown.message.includes(file) && !thrown.message.includes(basename(file))) return { outcome: 'failure', failure: 'unnamed' };
  if (thrown.message.length > maxMessageLength) return { outcome: 'failure', failure: 'too-long' };
  return { outcome: 'clean-error' };
}

function describeThrown(err: unknown): ThrownReport {
  if (err instanceof Error) return { isError: true, name: err.name, message: err.message };
  return { isError: false, name: typeof err, message: String(err) };
}

type ToWorker = { id: number; target: string; input: unknown };
type FromWorker =
  | { id: -1; kind: 'ready' }
  | { id: number; kind: 'ok'; ms: number }
  | { id: number; kind: 'error'; ms: number; thrown: ThrownReport }
  | { id: number; kind: 'unhandled'; thrown: ThrownReport };

function markUnhandled(result: FuzzResult, thrown: ThrownReport): FuzzResult {
  result.outcome = 'failure';
  result.failure = 'unhandled-rejection';
  result.message = `${thrown.name}: ${thrown.message.slice(0, 500)}`;
  return result;
}

/** One worker running one case at a time; replaced whole when a case hangs or kills it. */
class FuzzWorker {
  private worker: Worker;
  private pending: { id: number; resolve: (m: FromWorker | { kind: 'died'; failure: FailureKind; message: string }) => void } | null = null;
  /** an unhandled rejection reported for a case that already answered */
  private lateRejection: { id: number; thrown: ThrownReport } | null = null;
  /** the last case's result and id: a rejection surfacing after it answered still turns it into a failure */
  private last: { id: number; result: FuzzResult } | null = null;

  /** resolves when the target module is loaded; rejects when it cannot be (a broken module is no fuzz case) */
  private ready: Promise<void>;

  constructor(private readonly opts: Required<Pick<FuzzRunOptions, 'timeoutMs' | 'maxOldGenerationSizeMb'>> & { module: string }) {
    [this.worker, this.ready] = this.start();
  }

  private start(): [Worker, Promise<void>] {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { fuzzTargetModule: this.opts.module },
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxOldGenerationSizeMb, stackSizeMb: 4 },
      stdout: true, // targets' console output stays out of the test report
      stderr: true,
    });
    worker.stdout.resume();
    worker.stderr.resume();
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('message', (m: FromWorker) => (m.kind === 'ready' ? resolve() : undefined));
      worker.once('error', (err) => reject(new Error(`fuzz target module ${this.opts.module} failed to load: ${err.message}`)));
    });
    ready.catch(() => {}); // awaited by run(); a worker that dies later is reported per case instead
    worker.on('message', (m: FromWorker) => {
      if (m.kind === 'ready') return;
      if (m.kind === 'unhandled') {
        if (this.pending?.id === m.id) this.settle(m);
        else if (this.last?.id === m.id) markUnhandled(this.last.result, m.thrown);
        else this.lateRejection = { id: m.id, thrown: m.thrown };
        return;
      }
      if (this.pending?.id === m.id) this.settle(m);
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const oom = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.settle({ kind: 'died', failure: oom ? 'oom' : 'crash', message: err.message });
    });
    worker.on('exit', (code) => this.settle({ kind: 'died', failure: 'crash', message: `worker exited with code ${code}` }));
    return [worker, ready];
  }

  private settle(m: FromWorker | { kind: 'died'; failure: FailureKind; message: string }): void {
    const pending = this.pending;
    this.pending = null;
    pending?.resolve(m);
  }

  async run(c: FuzzCase, id: number, maxMessageLength: number): Promise<FuzzResult> {
    const result = await this.runOnce(c, id, maxMessageLength);
    this.last = { id, result };
    return result;
  }

  private async runOnce(c: FuzzCase, id: number, maxMessageLength: number): Promise<FuzzResult> {
    await this.ready;
    const started = Date.now();
    const answer = await new Promise<FromWorker | { kind: 'died'; failure: FailureKind; message: string }>((resolve) => {
      this.pending = { id, resolve };
      const timer = setTimeout(() => this.settle({ kind: 'died', failure: 'hang', message: `no answer in ${this.opts.timeoutMs} ms` }), this.opts.timeoutMs);
      const clear = this.pending.resolve;
      this.pending.resolve = (m) => {
        clearTimeout(timer);
        clear(m);
      };
      this.worker.postMessage({ id, target: c.target, input: c.input } satisfies ToWorker);
    });
    const ms = Date.now() - started;
    if (answer.kind === 'died') {
      await this.replace();
      return { case: c, outcome: 'failure', failure: answer.failure, message: answer.message, ms };
    }
    const late = this.lateRejection;
    this.lateRejection = null;
    if (answer.kind === 'unhandled' || late?.id === id) {
      return markUnhandled({ case: c, outcome: 'failure', ms }, answer.kind === 'unhandled' ? answer.thrown : late!.thrown);
    }
    if (answer.kind !== 'error') return { case: c, outcome: 'ok', ms };
    const verdict = classifyError(answer.thrown, c.file, maxMessageLength);
    const message = answer.thrown.message.length > 500 ? `${answer.thrown.message.slice(0, 500)}...` : answer.thrown.message;
    return { case: c, ...verdict, message: verdict.failure ? `${answer.thrown.name}: ${message}` : message, ms };
  }

  private async replace(): Promise<void> {
    this.worker.removeAllListeners();
    this.worker.on('error', () => {}); // a dying worker may still report; nobody is listening any more
    await this.worker.terminate();
    [this.worker, this.ready] = this.start();
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners();
    this.worker.on('error', () => {});
    await this.worker.terminate();
  }
}

/** Runs the cases (pulled lazily, so a generator can be endless under a deadline) and classifies each. */
export async function runFuzzCases(cases: Iterable<FuzzCase> | AsyncIterable<FuzzCase>, opts: FuzzRunOptions): Promise<FuzzReport> {
  const module = opts.module instanceof URL ? opts.module.href : pathToFileURL(opts.module).href;
  const workerOpts = { module, timeoutMs: opts.timeoutMs ?? 5000, maxOldGenerationSizeMb: opts.maxOldGenerationSizeMb ?? 512 };
  const maxMessageLength = opts.maxMessageLength ?? 2000;
  const results: FuzzResult[] = [];
  const iterator = Symbol.asyncIterator in cases ? cases[Symbol.asyncIterator]() : (cases as Iterable<FuzzCase>)[Symbol.iterator]();
  let nextId = 0;
  let drained = false;
  // one shared pull so concurrent workers never take the same case
  let pulling: Promise<unknown> = Promise.resolve();
  const pull = (): Promise<FuzzCase | null> => {
    const take = pulling.then(async () => {
      if (drained || (opts.deadline !== undefined && Date.now() >= opts.deadline)) return null;
      const step = await iterator.next();
      if (step.done) drained = true;
      return step.done ? null : step.value;
    });
    pulling = take;
    return take;
  };
  const lane = async (): Promise<void> => {
    const worker = new FuzzWorker(workerOpts);
    try {
      for (let c = await pull(); c !== null; c = await pull()) {
        const result = await worker.run(c, nextId++, maxMessageLength);
        results.push(result);
        opts.onResult?.(result);
      }
    } finally {
      await worker.close();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, lane));
  return summarise(results);
}

export function summarise(results: FuzzResult[]): FuzzReport {
  const counts: Record<string, Record<FuzzOutcome, number>> = {};
  for (const r of results) {
    const row = (counts[r.case.group ?? r.case.target] ??= { ok: 0, 'clean-error': 0, failure: 0 });
    row[r.outcome]++;
  }
  return { results, failures: results.filter((r) => r.outcome === 'failure'), counts };
}

/** One line per failure, for assertion messages: "target file [label]: hang: no answer in 5000 ms". */
export function describeFailures(report: FuzzReport, max = 20): string {
  const lines = report.failures
    .slice(0, max)
    .map((r) => `${r.case.target} ${r.case.file}${r.case.label ? ` [${r.case.label}]` : ''}: ${r.failure}: ${r.message ?? ''}`);
  if (report.failures.length > max) lines.push(`... and ${report.failures.length - max} more`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Worker side: this same file, started by FuzzWorker with the target module in workerData

/**
 * A moment for work the target started and did not await (a read still in flight) to finish before the case is
 * reported, so a rejection from it is charged to this case, not the next one.
 */
const settleStragglers = (): Promise<void> => new Promise((resolve) => setTimeout(() => setImmediate(resolve), 2));

async function workerMain(moduleUrl: string): Promise<void> {
  const targets = (await import(moduleUrl)) as Record<string, unknown>;
  parentPort!.postMessage({ id: -1, kind: 'ready' } satisfies FromWorker);
  let current = -1;
  process.on('unhandledRejection', (reason) => {
    parentPort!.postMessage({ id: current, kind: 'unhandled', thrown: describeThrown(reason) } satisfies FromWorker);
  });
  parentPort!.on('message', async (m: ToWorker) => {
    current = m.id;
    const started = Date.now();
    const target = targets[m.target];
    try {
      if (typeof target !== 'function') throw new TypeError(`fuzz target module has no export "${m.target}"`);
      await (target as FuzzTarget)(m.input);
      await settleStragglers();
      parentPort!.postMessage({ id: m.id, kind: 'ok', ms: Date.now() - started } satisfies FromWorker);
    } catch (err) {
      await settleStragglers();
      parentPort!.postMessage({ id: m.id, kind: 'error', ms: Date.now() - started, thrown: describeThrown(err) } satisfies FromWorker);
    }
  });
}

const fuzzWorkerData = workerData as { fuzzTargetModule?: unknown } | null;
if (!isMainThread && typeof fuzzWorkerData?.fuzzTargetModule === 'string') {
  await workerMain(fuzzWorkerData.fuzzTargetModule);
}
