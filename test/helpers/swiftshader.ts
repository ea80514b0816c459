// WebGPU on this machine's CPUs: Dawn finds SwiftShader (the CPU Vulkan in Debian's chromium package) only through
// environment variables read when a process starts, so WebGPU test runners run in a child process with them set
// and print one JSON line per case. This is that child's start and the reading of its lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SWIFTSHADER_DIR = '/usr/lib/chromium';
export const SWIFTSHADER_ICD = `${SWIFTSHADER_DIR}/vk_swiftshader_icd.json`;

/** false when SwiftShader is here, else the reason to skip (`what` says what would have run) */
export function swiftShaderSkip(what: string): false | string {
  return existsSync(SWIFTSHADER_ICD) ? false
    : `SwiftShader not found (${SWIFTSHADER_ICD}): install Debian's chromium package to run ${what} on the CPU`;
}

/** the environment under which Dawn's Vulkan backend finds SwiftShader */
export function swiftShaderEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra, VK_ICD_FILENAMES: SWIFTSHADER_ICD,
    LD_LIBRARY_PATH: [SWIFTSHADER_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

export interface RunnerOutput {
  /** every JSON line the runner printed, in order */
  lines: Record<string, unknown>[];
  /** its summary line ({ summary: true, ... }) */
  summary: Record<string, unknown>;
  status: number | null;
  stderr: string;
}

/** runs the compiled runner next to the test (`url` relative to it) under SwiftShader; fails the test without a summary */
export function runSwiftShaderRunner(url: URL, env: NodeJS.ProcessEnv, timeoutMs: number): RunnerOutput {
  const child = spawnSync(process.execPath, [fileURLToPath(url)], { env: swiftShaderEnv(env), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  const lines = child.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const summary = lines.find((r) => r.summary === true);
  assert.ok(summary, `the runner ended without a summary (exit ${child.status}, signal ${child.signal}):\n` +
    `${child.stdout.slice(-2000)}\n${child.stderr.slice(-4000)}`);
  return { lines, summary, status: child.status, stderr: child.stderr };
}
