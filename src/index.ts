// orpo-ts public API.
export type { Kernels, FloatArray, Weight } from './backend/kernels.js';
export { Bf16Buffer } from './backend/kernels.js';
export type { WeightDtype } from './model/layout.js';
export { getKernels, availableBackends } from './backend/index.js';
export { jsKernels } from './backend/js/kernels.js';
export type { CausalLM, ModelConfig, ParamSpec, ModelType, RowPacking } from './model/types.js';
export { parseConfig, SUPPORTED_MODEL_TYPES } from './model/config.js';
export { createModel, emptyModel, readParam, setParam, widenModel } from './model/create.js';
export type { DecoderBase as Model } from './model/base.js';
export { loadModel, saveModel, hfTensors } from './io/hf-model.js';
export { collatePairs, type TokenPair, type PreferenceBatch, type PackedBatch } from './data/collate.js';
export { createTokenizer, padTokenIdOf, type Tokenizer, type TokenizerFiles, type ChatMessage } from './data/tokenizer.js';
export { loadTokenizer, readTokenizerFiles } from './io/tokenizer-files.js';
export {
  loadPreferencePairs, streamPreferencePairs, emptyStats, describeStats, DEFAULT_DATA_OPTIONS,
  type DataOptions, type DataStats, type TokenizedExample,
} from './data/dataset.js';
export { readRows, resolveDataFiles, type RawRow } from './data/readers.js';
export { parsePreferenceRow, exampleToText, type PreferenceExample, type PreferenceText, type DropReason } from './data/formats.js';
export { tokenizePreferenceText, truncatePair, encodePrompt, validateTruncation, type TruncationOptions } from './data/tokenize.js';
export { planBatches, paddingStats, collatePlan, pairLength, type BatchPlanOptions, type PaddingStats } from './data/batching.js';
export { DataError } from './data/errors.js';
export {
  orpoForwardBackward, orpoStep, orpoEvaluate, orpoLossFromLogps, countNllTokens, buildTargets, forwardRows,
  type OrpoOptions, type OrpoMetrics, type SftScope,
} from './loss/orpo.js';
export { sharedPrefixRows, separateRows, chosenRows, sharedPrefixLength, type ForwardRows } from './loss/pair-rows.js';
export {
  preferenceForwardBackward, objectiveStep, objectiveEvaluate, type PreferenceOptions, type StepOptions, type StepResult,
} from './loss/preference.js';
export {
  METHODS, ZERO_UNITS, addUnits, type Method, type Objective, type ObjectiveResult, type SequenceScores, type Units, type ReferenceLogps, type Combine,
} from './loss/objective.js';
export { createObjective, DEFAULT_BETA, DPO_LOSS_TYPES, type DpoLossType, type ObjectiveOptions } from './loss/objectives/index.js';
export { orpoObjective } from './loss/objectives/orpo.js';
export { sftObjective } from './loss/objectives/sft.js';
export { dpoObjective } from './loss/objectives/dpo.js';
export { simpoObjective } from './loss/objectives/simpo.js';
export { METRIC, NEUTRAL_METRICS, type MetricName, type Metrics } from './loss/metric-names.js';
export { modelReference, type ReferenceModel, type SwitchableAdapters } from './loss/reference.js';
export { scoreBatch, responseLogps, unitsOf, type ScoreOptions, type ScoredBatch } from './loss/sequence-logps.js';
export { log1mexp, oddsRatio } from './loss/odds-ratio.js';
export { AdamW, clipGradNorm, gradNorm, type AdamWHyperparams } from './optim/adamw.js';
export { Rng } from './tensor/rng.js';
export { LoraAdapters, attachLora, type LoraLayerSpec } from './lora/adapters.js';
export { selectLoraTargets, defaultTargetModules, loraScaling, type LoraSettings, type LoraTarget } from './lora/config.js';
export { mergeLora } from './lora/merge.js';
export { saveAdapter, loadAdapter, readAdapterConfig } from './io/adapter.js';
export { FusedLogprobHead } from './loss/fused-head.js';
export { UnfusedLogprobHead, type TokenLogprobHead } from './loss/logprob-head.js';
export { MetricAccumulator } from './train/metrics.js';
export { planMemory, formatMemoryPlan, peakRssBytes, type MemoryPlan, type MemoryPlanInput } from './train/memory.js';
export { train, initialState, totalStepsOf, NonFiniteError, type TrainerState, type TrainerHooks, type TrainSetup, type TrainResult, type LogRecord, type Progress } from './train/trainer.js';
export { TRAIN_OPTIONS, validateTrainConfig, objectiveFromConfig, type TrainConfig } from './train/config.js';
export { resolveOptions, defaultsOf, formatHelp, OptionError, type OptionSpec, type OptionTable } from './train/options.js';
export { evaluatePairs, type EvaluateOptions, type EvaluateResult } from './train/evaluate.js';
export { learningRateAt, lrMultiplier, resolveWarmupSteps, SCHEDULER_TYPES, type SchedulerType, type ScheduleConfig } from './optim/schedule.js';
export { generateTokens, fullForwardLogits, type NextLogits, type GenerateOptions, type Generation } from './generate/generate.js';
export { sampleNext, argmax, type SamplingOptions } from './generate/sample.js';
export { renderReportHtml, type ReportInput } from './report/html.js';
export {
  exportModelFolderToGguf, exportAdapterFolderToGguf, writeModelGguf, writeLoraGguf, type GgufWriteSummary,
} from './io/gguf/export.js';
