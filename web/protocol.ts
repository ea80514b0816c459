// The messages between the page (web/app.ts) and its training worker (web/worker.ts). Requests carry an id and get
// one reply with that id; while training, the worker also sends log and progress events.
import type { LogRecord, Progress } from '../src/train/trainer.js';
import type { DemoModelSize } from '../src/train/demo-task.js';
import type { DataSummary, TrainChoices, TrainSummary } from '../src/web/session.js';

/** The GGUF storage types the page offers (`orpo export gguf --dtype`). */
export type GgufDownloadDtype = 'f32' | 'f16' | 'q8_0';

/** A loaded model: its one-line description and the LoRA target modules of its family (PEFT's default first). */
export interface ModelReply {
  description: string;
  loraTargets: { defaults: string[]; modules: string[] };
}

/** What the worker found: the TypeScript backend (always there) and whether WebGPU is, or why not. */
export interface BackendsReply {
  js: { name: string; note: string };
  webgpu: { available: true; name: string; adapter: string; isSoftware: boolean } | { available: false; reason: string };
}

/** `auto`: WebGPU when the worker found an adapter, else the TypeScript backend; `js`: the TypeScript backend */
export type BackendChoice = 'auto' | 'js';

export interface Requests {
  hello: { args: Record<string, never>; reply: BackendsReply & { lora: { r: number; alpha: number; dropout: number } } };
  demoModel: { args: { size: DemoModelSize; seed: number }; reply: ModelReply };
  folderModel: { args: { name: string; files: [string, ArrayBuffer][] }; reply: ModelReply };
  demoData: { args: { seed: number; trainPairs: number; evalPairs: number; choices: TrainChoices }; reply: { train: DataSummary; eval: DataSummary } };
  dataFile: { args: { role: 'train' | 'eval'; name: string; bytes: ArrayBuffer; choices: TrainChoices }; reply: DataSummary };
  dataSummary: { args: { file: string; choices: TrainChoices }; reply: DataSummary };
  train: { args: { choices: TrainChoices; backend: BackendChoice }; reply: TrainSummary };
  pause: { args: Record<string, never>; reply: null };
  generate: { args: { prompt: string; maxNewTokens: number; chat: boolean }; reply: { text: string } };
  logits: { args: { prompt: string }; reply: { ids: number[]; logits: number[] } };
  /** the model as a Hugging Face folder (merged after a LoRA run), or the LoRA run's PEFT adapter, zipped */
  zip: { args: { folder: string; dtype: 'F32' | 'BF16'; what: 'model' | 'adapter' }; reply: { bytes: ArrayBuffer } };
  /** the model (merged after a LoRA run) as one GGUF file whose general.name is `name` */
  gguf: { args: { name: string; dtype: GgufDownloadDtype }; reply: { bytes: ArrayBuffer } };
}

export type Op = keyof Requests;
/** the requests whose reply is a file's bytes, handed over (transferred) rather than copied */
export const BYTE_REPLIES: readonly Op[] = ['zip', 'gguf'];
export type RequestMessage = { [K in Op]: { id: number; op: K; args: Requests[K]['args'] } }[Op];
export type WorkerMessage =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string }
  | { event: 'log'; record: LogRecord }
  | { event: 'progress'; progress: Progress };
