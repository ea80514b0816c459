// What the web page does, without the page: one model with its tokenizer, the data files the user gave, a
// training run that can pause and resume, generation, and the trained folder as a zip. The page's worker
// (web/worker.ts) only turns messages into these calls, so the whole flow also runs, and is tested, in Node.
//
// Everything goes through the library's own code paths: createModel / the bytes-level folder loader, createTokenizer,
// streamPreferencePairs (TRL's formats, the chat template, truncation and the drop counts of `orpo data stats`),
// train() with TrainConfig's options and defaults, set up as `orpo train` sets it up (LoRA adapters, trainable
// buffers, loss heads, DPO's reference), and the KV-cached generator. The model lives on the TypeScript backend
// (the only CPU backend a page has), so a Node run of a session computes exactly what the page does, and what
// `ORPO_BACKEND=js orpo train` computes. A training backend (WebGPU, ./device.ts) may run the training steps on a
// copy of the model, as `orpo train --backend webgpu` does; the weights come back after each train() call, so
// generation, downloads and comparisons always read the host model.

import { jsKernels } from '../backend/js/kernels.js';
import type { Kernels } from '../backend/kernels.js';
import { dataLimitsOf, dataOptionsFrom } from '../cli/pairs.js';
import type { TokenPair } from '../data/collate.js';
import { emptyStats, streamPreferencePairs, type DataStats } from '../data/dataset.js';
import type { PreferenceText } from '../data/formats.js';
import { encodePrompt } from '../data/tokenize.js';
import { createTokenizer, padTokenIdOf, type Tokenizer, type TokenizerFiles } from '../data/tokenizer.js';
import { fullForwardLogits, generateTokens } from '../generate/generate.js';
import { modelFolderBytes, modelFromFolderBytes, type FolderBytes } from '../io/bytes-model.js';
import type { TokenLogprobHead } from '../loss/logprob-head.js';
import { modelReference, type ReferenceModel } from '../loss/reference.js';
import { LoraAdapters } from '../lora/adapters.js';
import { mergeLora } from '../lora/merge.js';
import { defaultTargetModules, LORA_MODULES } from '../lora/config.js';
import { attachLoraFromOptions, fusedLossFor, LORA_MEMORY_OPTIONS, lossHeads, trainableBuffers } from '../lora/options.js';
import type { DecoderBase } from '../model/base.js';
import { createModel, emptyModel, modelOnBackend } from '../model/create.js';
import { Generator } from '../model/generator.js';
import { objectiveFromConfig, TRAIN_OPTIONS, validateTrainConfig, type TrainConfig } from '../train/config.js';
import { arithmeticTask, demoModelConfig, demoTokenizerFiles, type DemoModelSize } from '../train/demo-task.js';
import { defaultsOf } from '../train/options.js';
import { train, type LogRecord, type Progress, type ResumeFrom, type TrainResult, type TrainSetup } from '../train/trainer.js';
import { adapterFolderBytes, peftTensorName } from '../io/adapter-files.js';
import type { GgufDtype } from '../io/gguf/architecture.js';
import { modelGgufBytes } from '../io/gguf/model-plan.js';
import { deviceCopy, hostDevice, type TrainingDevice } from '../train/device.js';
import type { TrainingBackend } from './device.js';
import { registerDataFile } from './memory-readers.js';
import { zipStore } from './zip.js';

/** The options a page sets; everything else keeps `orpo train`'s default. */
export type TrainChoices = Partial<Omit<TrainConfig, 'model' | 'dataset' | 'eval_dataset' | 'output_dir' | 'resume'>>;

export interface DataSummary {
  file: string;
  stats: DataStats;
  /** the first rows as the model sees them (after templating and prompt extraction) */
  preview: PreferenceText[];
}

export interface TrainSummary {
  /** optimizer steps done so far (all sessions of a paused and resumed run) */
  steps: number;
  totalSteps: number;
  /** wall time of the training loops so far */
  seconds: number;
  paused: boolean;
  firstEval: LogRecord | null;
  lastEval: LogRecord | null;
  /** what the run trains: every weight, or LoRA adapters of rank r on these modules */
  lora: { r: number; modules: string[] } | null;
  trainableParameters: number;
  /** where this train() call's steps ran: `webgpu (adapter)` or the host kernels' name (`js`) */
  backend: string;
}

/**
 * Where the page's LoRA fields start: `orpo train`'s defaults for alpha and dropout; it has no default rank (unset
 * means full fine-tuning), so r starts at TRL's ModelConfig default, 16.
 */
export const PAGE_LORA_DEFAULTS = {
  r: 16,
  alpha: defaultsOf(LORA_MEMORY_OPTIONS).lora_alpha,
  dropout: defaultsOf(LORA_MEMORY_OPTIONS).lora_dropout,
} as const;

export interface TrainHooks {
  log?(record: LogRecord): void;
  progress?(p: Progress): void;
}

/** Files of a model folder besides config.json and the weights that a trained folder keeps (the tokenizer's). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'generation_config.json'];

const utf8 = new TextEncoder();
const jsonBytes = (value: unknown): Uint8Array => utf8.encode(`${JSON.stringify(value, null, 2)}\n`);
const jsonlBytes = (rows: readonly object[]): Uint8Array => utf8.encode(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));

function parseJson(name: string, bytes: Uint8Array): Record<string, unknown> {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${name}: invalid JSON (${(error as Error).message})`);
  }
}

interface Run {
  key: string;
  config: TrainConfig;
  train: TokenPair[];
  eval: TokenPair[] | null;
  resume: ResumeFrom | null;
  seconds: number;
  firstEval: LogRecord | null;
  lastEval: LogRecord | null;
  /** DPO's frozen reference on the host (a copy of the starting weights), for runs that need one */
  referenceHost: DecoderBase | null;
}

export class BrowserSession {
  readonly kernels: Kernels = jsKernels;
  /** the model, its tokenizer, what the tokenizer was built from (for GGUF's vocabulary) and its files' bytes (for downloads) */
  private current: {
    model: DecoderBase; tokenizer: Tokenizer; tokenizerInput: TokenizerFiles; tokenizerFiles: Map<string, Uint8Array>; name: string;
  } | null = null;
  /** the LoRA adapters of the latest run, attached to the model (its weights are then the run's base) */
  private adapters: LoraAdapters | null = null;
  /** whether the model came from a picked folder (not the demo), and whether training has changed its weights since */
  private fromFolder = false;
  private baseTrained = false;
  private dataFiles: { train: string | null; eval: string | null } = { train: null, eval: null };
  private run: Run | null = null;
  private pauseRequested = false;
  /** where train() runs its steps: null = on the host model with its kernels */
  trainingBackend: TrainingBackend | null = null;

  get model(): DecoderBase {
    if (this.current === null) throw new Error('no model yet: choose the demo model or a model folder first');
    return this.current.model;
  }

  get tokenizer(): Tokenizer {
    return this.modelState().tokenizer;
  }

  private modelState(): NonNullable<BrowserSession['current']> {
    if (this.current === null) throw new Error('no model yet: choose the demo model or a model folder first');
    return this.current;
  }

  /** A one-line description of the model: family, size, parameters. */
  describeModel(): string {
    const { model, name } = this.modelState();
    const c = model.config;
    return `${name}: ${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, vocabulary ${c.vocabSize}, ${model.parameterCount.toLocaleString('en')} parameters`;
  }

  /** The LoRA target modules of the model's family, and PEFT's default among them (what an empty list means). */
  loraTargets(): { defaults: string[]; modules: string[] } {
    const config = this.model.config;
    return { defaults: [...defaultTargetModules(config)], modules: [...LORA_MODULES[config.family]] };
  }

  /** The built-in demo's model (a small Llama) and character-level tokenizer, randomly initialised as `orpo demo` makes them. */
  loadDemoModel(size: DemoModelSize, seed: number): void {
    const files = demoTokenizerFiles();
    const tokenizerFiles = new Map(Object.entries(files).map(([name, content]) => [name, jsonBytes(content)]));
    const tokenizerInput: TokenizerFiles = {
      tokenizer: files['tokenizer.json']!, config: files['tokenizer_config.json']!, specialTokensMap: files['special_tokens_map.json'], origin: 'demo tokenizer',
    };
    const model = createModel(demoModelConfig(size), { seed, kernels: this.kernels });
    this.setModel(model, createTokenizer(tokenizerInput), tokenizerInput, tokenizerFiles, 'demo model');
    this.fromFolder = false;
  }

  /** A Hugging Face model folder from its files' bytes (config.json, safetensors, tokenizer.json, tokenizer_config.json). */
  loadModelFolder(files: FolderBytes, name: string): void {
    const model = modelFromFolderBytes(files, { kernels: this.kernels });
    const tokenizerJson = files.get('tokenizer.json');
    if (tokenizerJson === undefined) throw new Error(`${name}: no tokenizer.json among the files; a model folder needs its tokenizer`);
    const optionalJson = (file: string): Record<string, unknown> | undefined => {
      const bytes = files.get(file);
      return bytes === undefined ? undefined : parseJson(file, bytes);
    };
    const template = files.get('chat_template.jinja');
    const modelType = model.config.modelType;
    const tokenizerInput: TokenizerFiles = {
      tokenizer: parseJson('tokenizer.json', tokenizerJson), config: optionalJson('tokenizer_config.json') ?? {},
      specialTokensMap: optionalJson('special_tokens_map.json'), origin: name, modelType,
      ...(template === undefined ? {} : { chatTemplateFile: new TextDecoder().decode(template) }),
    };
    const tokenizer = createTokenizer(tokenizerInput);
    if (tokenizer.vocabSize > model.config.vocabSize) {
      throw new Error(`${name}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.vocabSize}; they do not belong together`);
    }
    const tokenizerFiles = new Map(TOKENIZER_FILES.flatMap((file) => (files.has(file) ? [[file, files.get(file)!] as const] : [])));
    this.setModel(model, tokenizer, tokenizerInput, tokenizerFiles, name);
    this.fromFolder = true;
  }

  private setModel(model: DecoderBase, tokenizer: Tokenizer, tokenizerInput: TokenizerFiles, tokenizerFiles: Map<string, Uint8Array>, name: string): void {
    this.current = { model, tokenizer, tokenizerInput, tokenizerFiles, name };
    this.adapters = null;
    this.baseTrained = false;
    this.run = null;
  }

  /** Gives the page a data file; `role` says whether it trains or is held out for evaluation. */
  async setDataFile(role: 'train' | 'eval', name: string, bytes: Uint8Array, choices: TrainChoices = {}): Promise<DataSummary> {
    registerDataFile(name, bytes);
    this.dataFiles[role] = name;
    this.run = null;
    return this.summarizeData(name, choices);
  }

  /** The demo's arithmetic preference task, as the JSON Lines files `orpo demo` writes. */
  async useDemoData(seed: number, trainPairs: number, evalPairs: number, choices: TrainChoices = {}): Promise<{ train: DataSummary; eval: DataSummary }> {
    const task = arithmeticTask(seed, trainPairs, evalPairs);
    return {
      train: await this.setDataFile('train', 'demo-train.jsonl', jsonlBytes(task.train), choices),
      eval: await this.setDataFile('eval', 'demo-eval.jsonl', jsonlBytes(task.eval), choices),
    };
  }

  /** Row counts (read, used, dropped by reason, truncated) and the first rows, as `orpo data stats` reports them. */
  async summarizeData(file: string, choices: TrainChoices = {}): Promise<DataSummary> {
    const { stats, preview } = await this.readPairs(file, this.config(choices), 3);
    return { file, stats, preview };
  }

  private async readPairs(file: string, c: TrainConfig, previewRows = 0): Promise<{ pairs: TokenPair[]; stats: DataStats; preview: PreferenceText[] }> {
    const stats = emptyStats();
    const pairs: TokenPair[] = [];
    const preview: PreferenceText[] = [];
    for await (const row of streamPreferencePairs(file, this.tokenizer, dataOptionsFrom(dataLimitsOf(c)), stats)) {
      pairs.push(row.pair);
      if (preview.length < previewRows) preview.push(row.text);
    }
    return { pairs, stats, preview };
  }

  /** `orpo train`'s defaults under the page's choices, checked by the same rules. */
  config(choices: TrainChoices): TrainConfig {
    const c: TrainConfig = {
      ...defaultsOf(TRAIN_OPTIONS), save_steps: 0, report: false, ...choices,
      model: this.current?.name ?? 'model', dataset: this.dataFiles.train ?? 'train.jsonl', eval_dataset: this.dataFiles.eval, output_dir: 'download',
    };
    validateTrainConfig(c);
    return c;
  }

  /** Asks a running train() to stop after its current step; train() then returns with paused: true. */
  pause(): void {
    this.pauseRequested = true;
  }

  /**
   * Trains with the choices; after a pause, the same choices continue the run where it stopped (the trainer's own
   * resume: the same data order, schedule and AdamW moments, so a paused run ends where an unpaused one would).
   * Other choices, a new model or new data start over. Each call runs on `trainingBackend` as it is then (the
   * paused state is the host's: weights, adapters and AdamW moments), so a run paused on WebGPU may go on with
   * the TypeScript backend and the other way round.
   */
  async train(choices: TrainChoices, hooks: TrainHooks = {}): Promise<TrainSummary> {
    const { model, tokenizer } = this.modelState();
    if (this.dataFiles.train === null) throw new Error('no training data yet: choose a data file or the demo data first');
    const c = this.config(choices);
    const key = JSON.stringify(c);
    if (this.run === null || this.run.key !== key || this.run.resume === null) {
      const trainPairs = (await this.readPairs(this.dataFiles.train, c)).pairs;
      const evalPairs = this.dataFiles.eval === null ? null : (await this.readPairs(this.dataFiles.eval, c)).pairs;
      // no stale run to resume if what follows throws (target modules that match nothing)
      this.run = null;
      // a new run starts from the model as the page shows it: a previous LoRA run's adapters are folded into the
      // weights first (as `orpo merge` folds them), so training goes on from there as it does without LoRA
      if (this.adapters !== null) {
        mergeLora(this.adapters);
        this.adapters = null;
        this.baseTrained = true;
      }
      this.adapters = attachLoraFromOptions(model, c, c.seed);
      // full fine-tuning changes the weights an adapter would later be based on
      if (this.adapters === null) this.baseTrained = true;
      this.run = {
        key, config: c, train: trainPairs, eval: evalPairs, resume: null, seconds: 0, firstEval: null, lastEval: null,
        referenceHost: this.referenceHostFor(model, c, this.adapters),
      };
    }
    const run = this.run;
    const adapters = this.adapters;
    this.pauseRequested = false;
    // the host holds the latest weights (a paused run's included): a training backend starts each call from them
    const device = await this.openDevice(model, adapters);
    let result: TrainResult;
    try {
      result = await this.trainOn(device, run, padTokenIdOf(tokenizer), hooks);
      await device.syncToHost();
    } catch (error) {
      // a retry starts over from the weights the host holds
      this.run = null;
      throw error;
    } finally {
      device.release();
    }
    if (!result.interrupted) run.resume = null;
    run.seconds += result.seconds;
    return {
      steps: result.state.global_step, totalSteps: result.state.total_steps, seconds: run.seconds, paused: result.interrupted,
      firstEval: run.firstEval, lastEval: run.lastEval,
      lora: adapters === null ? null : { r: adapters.settings.r, modules: adapters.layers.map((l) => l.module) },
      trainableParameters: (adapters?.params ?? model.params).length,
      backend: device.name,
    };
  }

  /** The host model itself, or a copy on the training backend (given back if the copy cannot be made). */
  private async openDevice(model: DecoderBase, adapters: LoraAdapters | null): Promise<TrainingDevice<unknown, unknown>> {
    if (this.trainingBackend === null) return hostDevice(model, adapters) as TrainingDevice<unknown, unknown>;
    const opened = await this.trainingBackend.open();
    try {
      // the device adapters take the host adapters' seed, so they draw the same dropout masks
      return deviceCopy(opened.kernels, model, adapters, opened.name, () => opened.release());
    } catch (error) {
      opened.release();
      // typically a tensor larger than the adapter's largest storage binding (a big vocabulary's embedding)
      throw new Error(`the model could not be copied to ${opened.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** One train() call of `run` over the device's buffers; a pause keeps the AdamW moments on the host for the next call. */
  private async trainOn<F, I>(device: TrainingDevice<F, I>, run: Run, padTokenId: number, hooks: TrainHooks): Promise<TrainResult> {
    const c = run.config;
    return train(device.model, { train: run.train, eval: run.eval, padTokenId }, c, {
      log: (record) => {
        if (Object.keys(record).some((k) => k.startsWith('eval_'))) {
          run.firstEval ??= record;
          run.lastEval = record;
        }
        hooks.log?.(record);
      },
      progress: hooks.progress,
      shouldStop: () => this.pauseRequested,
      save: async (kind, state, optimizer) => {
        if (kind !== 'interrupt') return;
        // copies: on the host backend a download is the buffer itself, which the next call's optimizer replaces
        const m = (await device.kernels.download(optimizer.m)).slice();
        const v = (await device.kernels.download(optimizer.v)).slice();
        run.resume = { state, m, v, optimizerStep: optimizer.step };
      },
    }, run.resume, this.setupFor(device, c, run.referenceHost));
  }

  /**
   * What `orpo train` hands train() besides the data (src/cli/train.ts, runTraining): the trainable buffers (the
   * adapters under LoRA), the loss heads for the logits' size, the objective, DPO's reference, dropout switching
   * and the names of the trained tensors for messages about NaN/Inf.
   */
  private setupFor<F, I>(device: TrainingDevice<F, I>, c: TrainConfig, referenceHost: DecoderBase | null): TrainSetup<F, I> {
    const { model, adapters } = device;
    model.gradientCheckpointing = c.gradient_checkpointing;
    const fused = fusedLossFor(c, model.config, Math.max(c.per_device_train_batch_size, c.per_device_eval_batch_size), c.max_length);
    const heads = lossHeads(model, fused);
    const objective = objectiveFromConfig(c);
    return {
      trainable: trainableBuffers(model, adapters), heads, objective,
      reference: objective.needsReference ? this.referenceFor(device, c, heads.eval, fused, referenceHost) : null,
      ...(adapters === null ? {} : {
        setTraining: (on: boolean) => void (adapters.training = on),
        layout: adapters.layers.flatMap((l) => [
          { name: peftTensorName(l.module, 'A'), offset: l.aOffset, size: adapters.settings.r * l.inFeatures },
          { name: peftTensorName(l.module, 'B'), offset: l.bOffset, size: l.outFeatures * adapters.settings.r },
        ]),
      }),
    };
  }

  /**
   * The frozen copy of the starting weights DPO compares against, on the host, when the run needs one: not under
   * LoRA (the policy with its adapters off is the reference) nor with precompute_ref_log_probs (the policy itself,
   * before the first step). Kept for the whole run: a resumed call's reference is still the starting model.
   */
  private referenceHostFor(model: DecoderBase, c: TrainConfig, adapters: LoraAdapters | null): DecoderBase | null {
    if (!objectiveFromConfig(c).needsReference || adapters !== null || c.precompute_ref_log_probs) return null;
    const reference = emptyModel(model.config, this.kernels);
    reference.params.set(model.params);
    return reference;
  }

  /**
   * DPO's reference as `orpo train --method dpo` without --ref-model picks it: under LoRA the policy with its
   * adapters switched off; with precompute_ref_log_probs the policy itself before the first step; otherwise a
   * frozen copy of the starting weights (forward only, so checkpointing's one layer slot is all it keeps), moved to
   * the training backend when there is one.
   */
  private referenceFor<F, I>(device: TrainingDevice<F, I>, c: TrainConfig, evalHead: TokenLogprobHead<F, I>, fused: boolean,
    referenceHost: DecoderBase | null): ReferenceModel {
    const name = this.modelState().name;
    const { model, adapters } = device;
    if (adapters !== null) {
      return modelReference(model, { head: evalHead, sharePrompt: c.share_prompt, adapters, description: `${name} with the LoRA adapters switched off (no second copy)` });
    }
    if (c.precompute_ref_log_probs) {
      return modelReference(model, { head: evalHead, sharePrompt: c.share_prompt, description: `${name} itself, before the first step (no copy)` });
    }
    if (referenceHost === null) throw new Error('BrowserSession: a DPO run without LoRA or precomputed log-probs needs its frozen reference');
    // on the host the copy itself (same kernels, so F and I are the host's), else a copy of it on the device
    const reference = device.kernels === (referenceHost.kernels as unknown)
      ? referenceHost as unknown as DecoderBase<F, I> : modelOnBackend(referenceHost, device.kernels);
    reference.trainBase = false;
    reference.gradientCheckpointing = true;
    return modelReference(reference, { head: lossHeads(reference, fused).eval, sharePrompt: c.share_prompt, description: `a frozen copy of ${name}` });
  }

  /** Greedy (or sampled) continuation of a prompt, stopping at EOS: what `orpo generate` prints. */
  generate(prompt: string, opts: { maxNewTokens: number; chat?: boolean; temperature?: number; seed?: number }): string {
    const { model, tokenizer } = this.modelState();
    const text = opts.chat === true ? tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true }) : prompt;
    const eos = model.config.eosTokenId;
    const stops = new Set<number>(eos === null ? [] : Array.isArray(eos) ? eos : [eos]);
    if (tokenizer.eosTokenId !== null) stops.add(tokenizer.eosTokenId);
    const generator = new Generator(model);
    const out = generateTokens((tokens) => generator.nextLogits(tokens), encodePrompt(tokenizer, text), {
      maxNewTokens: opts.maxNewTokens, temperature: opts.temperature ?? 0, topK: 0, topP: 1, seed: opts.seed ?? 0, stopTokenIds: [...stops],
    }, model.config.maxPositions);
    return tokenizer.decode(out.tokens, { skipSpecialTokens: true });
  }

  /** The prompt's token ids and the logits of the token after it (a full forward, no cache): for checking a download. */
  promptLogits(prompt: string): { ids: number[]; logits: number[] } {
    const ids = encodePrompt(this.tokenizer, prompt);
    return { ids, logits: Array.from(fullForwardLogits(this.model)(ids)) };
  }

  /**
   * The model as a Hugging Face folder (config.json, model.safetensors, the tokenizer's files) in a zip under
   * `folder`/; after a LoRA run with the adapters merged into a copy of the weights, as `orpo merge` writes it.
   */
  modelZip(folder: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Uint8Array {
    const { tokenizerFiles } = this.modelState();
    return zipUnder(folder, new Map([...modelFolderBytes(this.mergedModel(), opts), ...tokenizerFiles]));
  }

  /**
   * The latest LoRA run's adapter in a zip under `folder`/: adapter_config.json and adapter_model.safetensors,
   * the bytes `orpo train --lora-r` writes. Its base is the model as it was when that run started; the config
   * names it (base_model_name_or_path) only when that is the folder the user picked, unchanged.
   */
  adapterZip(folder: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Uint8Array {
    const { name } = this.modelState();
    if (this.adapters === null) throw new Error('no LoRA adapter to download: train with LoRA first (the LoRA switch among the training options)');
    const base = this.fromFolder && !this.baseTrained ? name : null;
    return zipUnder(folder, adapterFolderBytes(this.adapters, { baseModelNameOrPath: base, dtype: opts.dtype ?? 'F32' }));
  }

  /**
   * The model (merged after a LoRA run, as the folder download) and its tokenizer as one GGUF file for llama.cpp:
   * the bytes `orpo export gguf` writes for the downloaded folder, general.name being `name` (the folder's name).
   */
  async gguf(name: string, opts: { dtype?: GgufDtype } = {}): Promise<Uint8Array> {
    const { tokenizer, tokenizerInput } = this.modelState();
    return modelGgufBytes(this.mergedModel(), tokenizerInput, { dtype: opts.dtype ?? 'f16', name, tokenizer });
  }

  /** The model with the latest LoRA run's adapters merged (W += scaling B A, lora/merge.ts), in a copy; else the model. */
  private mergedModel(): DecoderBase {
    const model = this.model;
    if (this.adapters === null) return model;
    const copy = emptyModel(model.config, this.kernels);
    copy.params.set(model.params);
    const adapters = new LoraAdapters(copy, this.adapters.settings);
    adapters.params.set(this.adapters.params);
    mergeLora(adapters);
    return copy;
  }
}

/** A zip of `files` under one top-level folder, as a model folder is unpacked. */
function zipUnder(folder: string, files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  return zipStore(new Map([...files].map(([name, bytes]) => [`${folder}/${name}`, bytes])));
}
