// orpo-ts in a web page: the core (model, objectives, AdamW, the trainer, tokenizer, data formats, safetensors,
// generation) with no Node API. scripts/build-web.mjs bundles this entry into dist/web/orpo.js and swaps the two
// Node-bound modules the core reaches for browser ones: the backend selection (the native addon cannot load in a
// page: src/backend/browser.ts, the TypeScript kernels) and the data file readers (src/web/memory-readers.ts, files
// the user picked, held in memory). Any other node: import fails the build. WebGPU (src/backend/webgpu, browser-safe)
// trains a copy of the model when navigator.gpu gives an adapter (src/web/device.ts).

export type { Kernels, FloatArray, Weight } from './backend/kernels.js';
export { Bf16Buffer } from './backend/kernels.js';
export type { WeightDtype } from './model/layout.js';
export { getKernels, availableBackends, BROWSER_BACKEND_NOTE } from './backend/browser.js';
export { jsKernels } from './backend/js/kernels.js';
export type { CausalLM, ModelConfig, ParamSpec, ModelType } from './model/types.js';
export { parseConfig, SUPPORTED_MODEL_TYPES } from './model/config.js';
export { createModel, emptyModel, modelOnBackend, copyParamsToHost, readParam, setParam, widenModel } from './model/create.js';
export type { DecoderBase as Model } from './model/base.js';
export {
  modelFromFolderBytes, modelFolderBytes, parseSafetensorsBytes, safetensorsBytes, folderTensors, tensorToF32,
  type FolderBytes, type BytesTensor,
} from './io/bytes-model.js';
export { matchWeights } from './io/weight-match.js';
export { collatePairs, type TokenPair, type PackedBatch } from './data/collate.js';
export { createTokenizer, padTokenIdOf, type Tokenizer, type TokenizerFiles, type ChatMessage } from './data/tokenizer.js';
export { streamPreferencePairs, emptyStats, describeStats, DEFAULT_DATA_OPTIONS, type DataOptions, type DataStats } from './data/dataset.js';
export { registerDataFile, forgetDataFile } from './web/memory-readers.js';
export { parsePreferenceRow, exampleToText, type PreferenceExample, type PreferenceText, type DropReason } from './data/formats.js';
export { tokenizePreferenceText, truncatePair, encodePrompt, validateTruncation, type TruncationOptions } from './data/tokenize.js';
export { METHODS, type Method, type Objective } from './loss/objective.js';
export { createObjective, DEFAULT_BETA } from './loss/objectives/index.js';
export { objectiveStep, objectiveEvaluate } from './loss/preference.js';
export { METRIC, type MetricName, type Metrics } from './loss/metric-names.js';
export { modelReference, type ReferenceModel } from './loss/reference.js';
export { AdamW, clipGradNorm } from './optim/adamw.js';
export { learningRateAt, SCHEDULER_TYPES } from './optim/schedule.js';
export { train, initialState, NonFiniteError, type TrainerState, type TrainerHooks, type LogRecord, type Progress } from './train/trainer.js';
export { TRAIN_OPTIONS, validateTrainConfig, objectiveFromConfig, type TrainConfig } from './train/config.js';
export { defaultsOf } from './train/options.js';
export { evaluatePairs } from './train/evaluate.js';
export { arithmeticTask, demoModelConfig, demoTokenizerFiles, checkAnswer, type DemoModelSize } from './train/demo-task.js';
export { generateTokens, fullForwardLogits } from './generate/generate.js';
export { Generator } from './model/generator.js';
export { Rng } from './tensor/rng.js';
export { zipStore, crc32 } from './web/zip.js';
export { BrowserSession, PAGE_LORA_DEFAULTS, type TrainChoices, type TrainSummary, type DataSummary } from './web/session.js';
export { probeWebGpu, webGpuTrainingBackend, type WebGpuAvailability, type TrainingBackend, type OpenedBackend } from './web/device.js';
export { deviceCopy, hostDevice, type TrainingDevice } from './train/device.js';
export { createWebGpuBackend, NoWebGpuAdapterError, type WebGpuBackend } from './backend/webgpu/index.js';
