// The AMX bf16 GEMM (native/amx_impl.h) runs here although no machine that runs this suite need have AMX:
// native/test/amx.cc runs it on emulated tiles (TDPBF16PS as the pseudocode of Intel's SDM defines it: the low and
// high halves of the pairs summed apart, rounding after each product, DAZ and FTZ), every transposition, accumulate
// flag and edge of the tiles and blocks, against float64 sums of the bf16-rounded operands, and on the real tiles
// too where the CPU and Linux allow them.
// The harness is built with binding.gyp's flags (native/amx.cc with the AVX-512 library's own), then built again
// with each deliberate fault of -DORPO_AMX_TEST_BREAK (amx_impl.h), each of which must fail the checks meant to see
// it: a harness that passed whatever the arithmetic did would otherwise pass here too.
//
// Needs g++ on x86-64; skips, saying so, without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gypFlags, harnessLines, nativeDir, run, type Run } from './helpers/native-build.js';

const skip = process.arch !== 'x64'
  ? 'the AMX code is in the x86-64 build only'
  : spawnSync('g++', ['--version'], { stdio: 'ignore' }).error !== undefined
    ? 'needs g++ (Debian: apt-get install g++)'
    : false;

const native = nativeDir;

async function compile(args: string[], cwd: string, what: string): Promise<void> {
  const r = await run('g++', args, cwd);
  assert.equal(r.code, 0, `g++ ${what} failed:\n${r.stderr}`);
}

interface Check {
  check: string;
  case: string;
  ok: boolean;
  detail: string;
}

interface Summary {
  summary: true;
  break: number;
  hardware: boolean;
  emulated: boolean;
  checks: number;
  failures: number;
}

/** the harness's checks and summary, which must count the same checks and failures */
function parse(what: string, r: Run): { checks: Check[]; summary: Summary } {
  const { checks, summary } = harnessLines<Check, Summary>(what, r);
  assert.equal(checks.length, summary.checks, `${what}: the summary counts another number of checks`);
  assert.equal(checks.filter((c) => !c.ok).length, summary.failures, `${what}: the summary counts other failures`);
  return { checks, summary };
}

// Each fault and the checks that must catch it (each of these fails; others may too)
const breaks: { n: number; what: string; caughtBy: RegExp[] }[] = [
  { n: 1, what: "products added to C one by one (the Intrinsics Guide's reading, not the SDM's)",
    caughtBy: [/^tdpbf16ps products summed before C$/, /^tdpbf16ps low and high halves summed apart over k$/] },
  { n: 2, what: 'no rounding inside the sums', caughtBy: [/^tdpbf16ps rounding to nearest even after each product$/] },
  { n: 3, what: 'no DAZ on bf16 inputs', caughtBy: [/^tdpbf16ps DAZ on a bf16 input$/] },
  { n: 4, what: 'operands truncated, not rounded to nearest even', caughtBy: [/^gemm$/, /^self_check$/] },
  { n: 5, what: "an odd K's last k dropped", caughtBy: [/^gemm$/, /^self_check$/] },
];

/** whether this CPU runs AVX-512 code (amx.cc is built with the AVX-512 library's flags; run here only then) */
function hasAvx512(): boolean {
  try {
    return /^flags\s*:.*\bavx512f\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** the builds of both tests: harness objects per fault, amx.cc as the addon builds it and in its emulated test builds */
interface Builds {
  dir: string;
  harness: (n: number) => string;
  amx: { addon: string; emulated: string; emulatedBroken: string };
}

async function buildAll(dir: string): Promise<Builds> {
  const { common, avx512, avx512Sources } = gypFlags();
  assert.ok(avx512Sources.includes('native/amx.cc'), 'binding.gyp: native/amx.cc is not in the AVX-512 library');
  assert.ok(!avx512.some((f) => f.startsWith('-mamx')),
    'binding.gyp: -mamx flags would let the compiler use AMX anywhere in the AVX-512 library');
  const variants = [0, ...breaks.map((b) => b.n)];
  const harness = (n: number) => join(dir, n ? `harness-break${n}` : 'harness');
  const amx = { addon: join(dir, 'addon-amx.o'), emulated: join(dir, 'addon-amx-emulated.o'),
    emulatedBroken: join(dir, 'addon-amx-emulated-broken.o') };
  const amxBuild = (defines: string[], out: string) =>
    compile([...common, ...avx512, ...defines, '-pthread', '-c', join(native, 'amx.cc'), '-o', out], dir, `native/amx.cc ${defines.join(' ')}`);
  // amx.cc as the addon builds it, and emulated (whole and with operands truncated); the harness once per fault
  await Promise.all([
    amxBuild([], amx.addon),
    amxBuild(['-DORPO_AMX_EMULATE'], amx.emulated),
    amxBuild(['-DORPO_AMX_EMULATE', '-DORPO_AMX_TEST_BREAK=4'], amx.emulatedBroken),
    ...variants.map((n) => compile(
      [...common, ...(n ? [`-DORPO_AMX_TEST_BREAK=${n}`] : []), '-pthread', '-c', join(native, 'test', 'amx.cc'),
        '-o', `${harness(n)}.o`], dir, `native/test/amx.cc (break ${n})`)),
  ]);
  await Promise.all([
    ...variants.map((n) => compile(['-pthread', `${harness(n)}.o`, amx.addon, '-o', harness(n)], dir, `linking (break ${n})`)),
    compile(['-pthread', `${harness(0)}.o`, amx.emulated, '-o', `${harness(0)}-emulated`], dir, 'linking (emulated)'),
    compile(['-pthread', `${harness(0)}.o`, amx.emulatedBroken, '-o', `${harness(0)}-emulated-broken`], dir,
      'linking (emulated, broken)'),
  ]);
  return { dir, harness, amx };
}

let built: Promise<Builds> | undefined;
const workDir = mkdtempSync(join(tmpdir(), 'orpo-amx-'));
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
/** both tests use one set of builds (about 40 s of compiling on two cores) */
const builds = (): Promise<Builds> => built ??= buildAll(workDir);

test('AMX bf16 GEMM on emulated tiles matches float64 sums of bf16 operands; each deliberate fault fails it',
  { skip, timeout: 600_000 }, async (t) => {
    const { dir, harness } = await builds();
    const good = parse('harness', await run(harness(0), [], dir));
    const failed = good.checks.filter((c) => !c.ok);
    assert.deepEqual(failed.slice(0, 10).map((c) => JSON.stringify(c)), [],
      `${failed.length} of ${good.checks.length} checks failed (first 10 shown)`);
    assert.equal(good.summary.break, 0);
    // enough of each kind ran that a harness cut short cannot pass
    const gemms = good.checks.filter((c) => c.check === 'gemm' && c.case.startsWith('emulated'));
    assert.ok(gemms.length >= 100, `only ${gemms.length} emulated GEMM checks`);
    assert.ok(gemms.some((c) => /K1100 .*blocks 512,96,1024/.test(c.case)), 'no case past KC');
    assert.ok(gemms.some((c) => /B bf16$/.test(c.case)), 'no case with B a bf16 weight');
    assert.ok(good.checks.filter((c) => c.check.startsWith('tdpbf16ps') && c.case === 'emulated').length >= 8,
      'the TDPBF16PS unit checks did not all run');
    assert.ok(good.checks.some((c) => c.check === 'self_check' && c.case === 'emulated'), 'no self-check');
    t.diagnostic(`${good.checks.length} checks passed; ${good.summary.hardware
      ? 'AMX hardware present: the unit checks, the self-check and the GEMM cases ran on the real tiles too'
      : 'no AMX on this CPU: emulated tiles only'}`);

    for (const b of breaks) {
      const r = await run(harness(b.n), [], dir);
      const { checks, summary } = parse(`break ${b.n}`, r);
      assert.equal(summary.break, b.n);
      assert.equal(r.code, 1, `break ${b.n} (${b.what}): the harness exited ${r.code}, not 1`);
      for (const re of b.caughtBy) {
        const caught = checks.filter((c) => re.test(c.check) && c.case.startsWith('emulated') && !c.ok);
        assert.ok(caught.length > 0, `break ${b.n} (${b.what}) was not caught by ${re}`);
      }
      t.diagnostic(`break ${b.n} (${b.what}): ${summary.failures} of ${summary.checks} checks failed, as they must`);
    }
  });

test("amx.cc's own entry points on emulated tiles: GEMMs pass, and a wrong kernel fails its start-up check and turns "
  + 'itself off with one line', { skip: skip || (hasAvx512() ? false : 'amx.cc is AVX-512 code; this CPU has none'),
  timeout: 600_000 }, async () => {
  const { dir, harness } = await builds();
  const r = await run(`${harness(0)}-emulated`, [], dir);
  const { checks, summary } = parse('emulated addon build', r);
  assert.equal(summary.emulated, true);
  const failed = checks.filter((c) => !c.ok);
  assert.deepEqual(failed.slice(0, 10).map((c) => JSON.stringify(c)), [], `${failed.length} checks failed`);
  assert.ok(checks.some((c) => c.check === 'usable' && c.case === 'addon-emulated' && c.ok), 'usable() did not say yes');
  assert.ok(checks.filter((c) => c.check === 'gemm' && c.case.startsWith('addon-emulated')).length >= 100,
    "amx.cc's gemm_serial did not run the GEMM cases");
  assert.equal(r.stderr, '', 'a passing start-up check says nothing');

  const broken = await run(`${harness(0)}-emulated-broken`, [], dir);
  const b = parse('emulated addon build, operands truncated', broken);
  assert.ok(b.checks.some((c) => c.check === 'usable' && !c.ok), 'the start-up check passed a wrong kernel');
  const lines = broken.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `want one line on stderr:\n${broken.stderr}`);
  assert.match(lines[0], /^orpo: AMX bf16 GEMM failed its start-up check .*use the AVX-512 paths/);
});

test("the AVX-512 table's bf16 products through the amx path (amx.cc on emulated tiles): native/test/parity.cc passes",
  { skip: skip || (hasAvx512() ? false : 'the AVX-512 kernel table needs an AVX-512 CPU'), timeout: 600_000 }, async () => {
    const { dir } = await builds();
    const { common, avx512 } = gypFlags();
    const sources: Array<[string, string[]]> = [
      ['test/parity.cc', ['-DPARITY_TABLE=kernels_avx512']], ['isa_avx512.cc', avx512],
      ['amx.cc', [...avx512, '-DORPO_AMX_EMULATE']], ['isa_generic.cc', []], ['pool.cc', []], ['cpu.cc', []],
    ];
    const objects = sources.map(([s]) => join(dir, `parity-${s.replace(/\W/g, '_')}.o`));
    await Promise.all(sources.map(([s, flags], i) =>
      compile([...common, ...flags, '-pthread', '-c', join(native, s), '-o', objects[i]], dir, s)));
    const exe = join(dir, 'parity-avx512-amx');
    await compile(['-pthread', ...objects, '-o', exe], dir, 'linking parity');
    // the process starts on the amx path (the probe would pick a faster one over the slow emulation), and the
    // harness's small-block cases run each path gemm_configure accepts, amx among them
    const r = await run(exe, [], dir, { ...process.env, ORPO_BF16_KERNEL: 'amx' });
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.find((l) => l.summary === true);
    assert.ok(summary, `parity stopped before its summary (exit ${r.code})\n${r.stderr}`);
    const failed = lines.filter((l) => l.ok === false);
    assert.deepEqual(failed.slice(0, 5).map((l) => JSON.stringify(l)), [], `${failed.length} parity checks failed`);
    assert.equal(r.code, 0, r.stderr);
    const plan = lines.find((l) => l.kernel === 'gemm_info');
    assert.match(String(plan?.detail), /bf16 amx \(ORPO_BF16_KERNEL\)/, 'the process did not start on the amx path');
    assert.ok(lines.some((l) => l.kernel === 'gemm' && String(l.case).includes('bf16')), 'no bf16 GEMM case ran');
  });
