// The golden fixtures and a short training run on the WebGPU backend, one JSON line per case (started by
// test/webgpu-fixtures.test.ts in a child process with SwiftShader's environment, as parity-runner.ts is).
//
// Fixtures: every available case (ORPO on llama/gpt2 folders, SFT/DPO/SimPO under methods/) runs the model,
// loss head, objective, backward, gradient clipping and AdamW on the GPU through the library's generic code
// (modelOnBackend: the same model, loss and optimiser classes the CPU runs), and compares with the independent
// PyTorch reference at the CPU tests' tolerances. Training: `orpo train --backend webgpu` and the same run on the
// TypeScript backend log the same losses step by step and write the same weights (float32 sums in other orders).
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createNodeWebGpuBackend } from '../../src/backend/webgpu/node-gpu.js';
import type { WebGpuKernels } from '../../src/backend/webgpu/kernels.js';
import type { GpuTensor } from '../../src/backend/webgpu/buffers.js';
import { loadModel } from '../../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.js';
import { collatePairs, type PreferenceBatch } from '../../src/data/collate.js';
import { modelOnBackend } from '../../src/model/create.js';
import type { DecoderBase } from '../../src/model/base.js';
import { hfLayoutTensors } from '../../src/model/layout.js';
import { createObjective } from '../../src/loss/objectives/index.js';
import { objectiveStep } from '../../src/loss/preference.js';
import { modelReference } from '../../src/loss/reference.js';
import { AdamW, clipGradNorm } from '../../src/optim/adamw.js';
import { golden } from '../helpers/shared.js';

interface Expected {
  metrics: Record<string, number>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number;
    losses_before_each_step: number[]; grad_norms_before_clipping: number[]; loss_after_last_step: number };
}

type Method = 'orpo' | 'sft' | 'dpo' | 'simpo';
const OPTIONS: Record<Method, { beta?: number; simpoGamma?: number; sftScope?: 'full' | 'response' }> = {
  orpo: {}, sft: {}, dpo: { beta: 0.1 }, simpo: { beta: 2.0, simpoGamma: 0.5 },
};

/** the first failure, or null: |got - want| <= rtol |want| (absolute 1e-6 below 1e-3, as the CPU tests) */
function rel(got: number, want: number, rtol: number, what: string): string | null {
  const ok = Math.abs(want) < 1e-3 ? Math.abs(got - want) <= 1e-6 : Math.abs(got - want) <= rtol * Math.abs(want);
  return ok ? null : `${what}: ${got} vs ${want}`;
}

async function tensors(file: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const [name, info] of header.tensors) out.set(name, await readTensorF32(info));
  return out;
}

async function fixtureCase(kernels: WebGpuKernels, cs: string, folder: string, method: Method): Promise<string | null> {
  const dir = golden(cs)!;
  const batch = JSON.parse(readFileSync(join(dir, 'batch.json'), 'utf8')) as PreferenceBatch & { beta: number; sft_scope: 'full' | 'response' };
  const expectedFile = method === 'orpo' ? join(dir, 'expected.json') : golden('methods', cs, `${method}.json`)!;
  const expected = JSON.parse(readFileSync(expectedFile, 'utf8')) as Expected;
  const grads = await tensors(method === 'orpo' ? join(dir, 'expected.safetensors') : golden('methods', cs, `${method}.safetensors`)!);
  const objective = createObjective({ method, ...(method === 'orpo' ? { beta: batch.beta, sftScope: batch.sft_scope } : OPTIONS[method]) });
  const packed = collatePairs(batch.pairs, batch.pad_token_id);
  const onGpu = async (path: string): Promise<DecoderBase<GpuTensor, GpuTensor>> => modelOnBackend(await loadModel(path), kernels);
  const refModel = method === 'dpo' ? await onGpu(golden('methods', cs, 'ref-model')!) : null;
  const model = await onGpu(join(dir, folder));
  for (const sharePrompt of [true, false]) {
    const reference = refModel === null ? null : modelReference(refModel, { description: 'ref-model', sharePrompt });
    model.zeroGrad();
    const r = await objectiveStep(model, packed, objective, { reference, sharePrompt });
    const what = `sharePrompt ${sharePrompt}`;
    const bad = rel(r.loss, expected.metrics['loss']!, 1e-5, `loss (${what})`)
      ?? Object.entries(expected.metrics).filter(([n]) => n !== 'num_completion_tokens')
        .map(([n, v]) => rel((r.metrics as Record<string, number>)[n] ?? NaN, v, 1e-5, `${n} (${what})`)).find((x) => x !== null);
    if (bad) return bad;
    const host = await kernels.download(model.grads);
    for (const t of hfLayoutTensors(model.layout, host)) {
      const want = grads.get(method === 'orpo' ? `grad.${t.name}` : t.name) ?? grads.get(`grad.${t.name}`);
      if (want === undefined) return `no reference gradient for ${t.name}`;
      let maxRef = 0;
      let maxErr = 0;
      for (let i = 0; i < want.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(want[i]!));
        maxErr = Math.max(maxErr, Math.abs(t.data[i]! - want[i]!));
      }
      if (!(maxErr <= 1e-4 * maxRef + 1e-6)) return `gradient ${t.name} (${what}): max error ${maxErr} > 1e-4 * ${maxRef} + 1e-6`;
    }
  }
  // five AdamW steps with clipping, all on the GPU; DPO's reference is the initial policy, frozen
  if (folder !== 'model') return null;
  const policy = await onGpu(join(dir, 'model'));
  const frozen = method === 'dpo' ? await onGpu(join(dir, 'model')) : null;
  const reference = frozen === null ? null : modelReference(frozen, { description: 'initial policy' });
  const a = expected.adamw;
  const opt = new AdamW(kernels.lengthOf(policy.params), { lr: a.lr, beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay }, kernels);
  for (let s = 0; s < a.losses_before_each_step.length; s++) {
    policy.zeroGrad();
    const r = await objectiveStep(policy, packed, objective, { reference });
    const bad = rel(r.loss, a.losses_before_each_step[s]!, 1e-4, `AdamW loss before step ${s + 1}`)
      ?? rel(await clipGradNorm(policy.grads, a.max_grad_norm, kernels), a.grad_norms_before_clipping[s]!, 1e-4, `grad norm before step ${s + 1}`);
    if (bad) return bad;
    opt.update(policy.params, policy.grads);
  }
  policy.zeroGrad();
  return rel((await objectiveStep(policy, packed, objective, { reference })).loss, a.loss_after_last_step, 1e-4, 'loss after the last AdamW step');
}

/** `orpo train` on the demo task, a few steps, on WebGPU and on the TypeScript backend: the same losses, the same weights */
async function trainingCase(): Promise<string | null> {
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const root = mkdtempSync(join(tmpdir(), 'orpo-webgpu-train-'));
  try {
    const run = (backend: string, lora: boolean): { losses: number[]; weights: Map<string, Float32Array> | null; out: string } => {
      const out = join(root, `${backend}${lora ? '-lora' : ''}`);
      const args = [main, 'demo', '--backend', backend, '--max-steps', '4', '--train-pairs', '64', '--eval-pairs', '8',
        '--per-device-train-batch-size', '8', '--hidden-size', '32', '--num-hidden-layers', '1', '--output-dir', out, '--json'];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: process.env, timeout: 240_000 });
      if (r.status !== 0) throw new Error(`orpo demo --backend ${backend} failed (${r.status}): ${r.stderr.slice(-1500)}`);
      const ranOn = String((JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend?: unknown }).backend);
      if (!ranOn.startsWith(backend)) throw new Error(`orpo demo --backend ${backend} ran on ${ranOn}`);
      const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>)
        .filter((x) => x['loss'] !== undefined).map((x) => x['loss']!);
      return { losses, weights: null, out };
    };
    const gpu = run('webgpu', false);
    const cpu = run('js', false);
    if (gpu.losses.length !== 4 || cpu.losses.length !== 4) return `expected 4 logged losses, got ${gpu.losses.length} (webgpu) and ${cpu.losses.length} (js)`;
    for (let i = 0; i < 4; i++) {
      const bad = rel(gpu.losses[i]!, cpu.losses[i]!, 1e-4, `loss at step ${i + 1}`);
      if (bad) return bad;
    }
    // LoRA with dropout (the masks must agree: the device adapters draw them from the host adapters' seed), through
    // orpo train on the demo's base model and data, resumable files and all
    const lora = (backend: string, extra: string[] = []): number[] => {
      const out = join(root, `lora-${backend}${extra.length ? '-' + extra.join('') : ''}`);
      const args = [main, 'train', '--backend', backend, '--model', join(cpu.out, 'base-model'), '--dataset', join(cpu.out, 'data', 'train.jsonl'),
        '--lora-r', '4', '--lora-dropout', '0.2', '--max-steps', '3', '--per-device-train-batch-size', '8', '--max-length', '16',
        '--learning-rate', '1e-2', '--logging-steps', '1', '--save-steps', '0', '--report', 'false', '--output-dir', out, ...extra];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: process.env, timeout: 240_000 });
      if (r.status !== 0) throw new Error(`orpo train --lora-r 4 --backend ${backend} failed (${r.status}): ${r.stderr.slice(-1500)}`);
      return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>)
        .filter((x) => x['loss'] !== undefined).map((x) => x['loss']!);
    };
    const loraGpu = lora('webgpu');
    const loraCpu = lora('js');
    if (loraGpu.length !== 3 || loraCpu.length !== 3) return `LoRA: expected 3 logged losses, got ${loraGpu.length} and ${loraCpu.length}`;
    for (let i = 0; i < 3; i++) {
      const bad = rel(loraGpu[i]!, loraCpu[i]!, 1e-4, `LoRA (dropout 0.2) loss at step ${i + 1}`);
      if (bad) return bad;
    }
    // the same on a base held in bfloat16 (torch_dtype bfloat16): the device reads the frozen bfloat16 matrices
    const bf16 = ['--torch-dtype', 'bfloat16'];
    const bf16Gpu = lora('webgpu', bf16);
    const bf16Cpu = lora('js', bf16);
    if (bf16Gpu.length !== 3 || bf16Cpu.length !== 3) return `LoRA on a bfloat16 base: expected 3 logged losses, got ${bf16Gpu.length} and ${bf16Cpu.length}`;
    for (let i = 0; i < 3; i++) {
      const bad = rel(bf16Gpu[i]!, bf16Cpu[i]!, 1e-4, `LoRA on a bfloat16 base: loss at step ${i + 1}`);
      if (bad) return bad;
    }
    if (bf16Cpu.every((x, i) => x === loraCpu[i])) return 'LoRA on a bfloat16 base gave the float32 base\'s losses: torch_dtype had no effect';
    // orpo eval of the trained folder on both backends: the same metrics
    const evaluate = (backend: string): Record<string, unknown> => {
      const r = spawnSync(process.execPath, [main, 'eval', '--backend', backend, '--model', cpu.out, '--dataset', join(cpu.out, 'data', 'eval.jsonl'), '--json'],
        { encoding: 'utf8', env: process.env, timeout: 240_000 });
      if (r.status !== 0) throw new Error(`orpo eval --backend ${backend} failed (${r.status}): ${r.stderr.slice(-1500)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    };
    const evalGpu = evaluate('webgpu');
    const evalCpu = evaluate('js');
    if (!String(evalGpu['backend']).startsWith('webgpu')) return `orpo eval --backend webgpu ran on ${String(evalGpu['backend'])}`;
    for (const [k, v] of Object.entries(evalCpu)) {
      if (!k.startsWith('eval_') || /runtime|per_second/.test(k) || typeof v !== 'number') continue;
      const bad = rel(Number(evalGpu[k]), v, 1e-5, `orpo eval ${k}`);
      if (bad) return bad;
    }
    const a = await tensors(join(gpu.out, 'model.safetensors'));
    const b = await tensors(join(cpu.out, 'model.safetensors'));
    for (const [name, w] of b) {
      const g = a.get(name);
      if (g === undefined) return `the webgpu run wrote no ${name}`;
      let maxErr = 0;
      let maxRef = 0;
      for (let i = 0; i < w.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(g[i]! - w[i]!));
        maxRef = Math.max(maxRef, Math.abs(w[i]!));
      }
      if (!(maxErr <= 1e-4 * maxRef + 1e-6)) return `trained ${name}: max difference ${maxErr} (largest weight ${maxRef})`;
    }
    return null;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const only = process.argv[2] ? new RegExp(process.argv[2]) : null;
  const { kernels, runtime } = await createNodeWebGpuBackend();
  console.log(JSON.stringify({ adapter: runtime.info.adapter }));
  const cases: [string, () => Promise<string | null>][] = [];
  for (const cs of ['llama', 'gpt2']) {
    for (const folder of ['model', 'model-bf16-sharded']) {
      if (golden(cs, folder) !== null && golden(cs, 'expected.json') !== null) cases.push([`fixture ${cs}/${folder} orpo`, () => fixtureCase(kernels, cs, folder, 'orpo')]);
    }
    for (const method of ['sft', 'dpo', 'simpo'] as const) {
      const needs = [golden(cs, 'model'), golden('methods', cs, `${method}.json`), method === 'dpo' ? golden('methods', cs, 'ref-model') : ''];
      if (!needs.includes(null)) cases.push([`fixture ${cs}/model ${method}`, () => fixtureCase(kernels, cs, 'model', method)]);
    }
  }
  cases.push(['orpo demo, orpo train --lora-r (dropout; float32 and bfloat16 base) and orpo eval on webgpu: the TypeScript backend\'s losses, weights and metrics', trainingCase]);
  let failed = 0;
  for (const [name, run] of cases) {
    if (only && !only.test(name)) continue;
    const t0 = Date.now();
    let detail: string | null;
    try {
      detail = await run();
    } catch (e) {
      detail = (e as Error).stack ?? String(e);
    }
    if (detail !== null) failed++;
    console.log(JSON.stringify({ name, ok: detail === null, ms: Date.now() - t0, ...(detail ? { detail } : {}) }));
  }
  console.log(JSON.stringify({ summary: true, cases: cases.length, failed }));
  runtime.destroy();
}

if (process.env.ORPO_WEBGPU_FIXTURES === '1') await main();
else console.log('webgpu fixtures runner: started by test/webgpu-fixtures.test.ts (ORPO_WEBGPU_FIXTURES=1); nothing to do alone');
