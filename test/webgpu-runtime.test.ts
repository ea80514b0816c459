// The parts of the WebGPU backend that need no adapter: the WGSL tensor rewrite, size classes, grids, and the
// messages when WebGPU or an adapter is missing. (The kernels themselves: test/webgpu-kernels.test.ts.)
/// <reference types="@webgpu/types" />
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acquireDevice, NoWebGpuAdapterError } from '../src/backend/webgpu/device.js';
import { rewriteTensorAccess, grid1d, type KernelSpec } from '../src/backend/webgpu/runtime.js';
import { sizeClassOf } from '../src/backend/webgpu/buffers.js';
import { KERNELS, attentionDirect, gemmTile, rowThreads } from '../src/backend/webgpu/kernel-table.js';

test('rewriteTensorAccess offsets every index of a tensor, nested brackets included, and nothing else', () => {
  const bind = (i: string): string => `g1[P.o_x + (${i})]`;
  assert.equal(rewriteTensorAccess('x[i] = x[a[j] + 1u] * x2[i] + max_x[0];', 'x', bind),
    'g1[P.o_x + (i)] = g1[P.o_x + (a[j] + 1u)] * x2[i] + max_x[0];');
  assert.equal(rewriteTensorAccess('let y = P.x[0];', 'x', bind), 'let y = P.x[0];');
  assert.throws(() => rewriteTensorAccess('x[a[i]', 'x', bind), /unbalanced/);
});

test('size classes: powers of two from 256 bytes, then 16 MiB steps', () => {
  assert.equal(sizeClassOf(1), 256);
  assert.equal(sizeClassOf(257), 512);
  assert.equal(sizeClassOf(4096), 4096);
  assert.equal(sizeClassOf(64 << 20), 64 << 20);
  assert.equal(sizeClassOf((64 << 20) + 1), (64 << 20) + (16 << 20));
});

test('grid1d folds more than 65535 workgroups into a second dimension', () => {
  assert.deepEqual(grid1d(1000, 256), [4, 1, 1]);
  assert.deepEqual(grid1d(0, 256), [0, 1, 1]);
  const [x, y] = grid1d(600_000_000, 256);
  assert.ok(x <= 65535 && y <= 65535 && x * y * 256 >= 600_000_000);
});

test('every kernel in the table indexes each tensor it declares', () => {
  for (const [key, entry] of Object.entries(KERNELS)) {
    const spec: KernelSpec = entry;
    assert.equal(spec.name, key);
    for (const [RT, DIRECT] of [[1, true], [32, false], [256, false]] as const) {
      const source = spec.source({ HD: 8, TK: 4, TILE: 64, RB: 4, RT, DIRECT });
      for (const t of spec.tensors) assert.match(source, new RegExp(`(?<![A-Za-z0-9_.])${t.name}\\[`), `${key} never indexes ${t.name}`);
    }
  }
});

test('row kernels size their workgroups by the row width: narrow rows have no barrier, wide rows a full workgroup', () => {
  assert.deepEqual([1, 7, 64, 128, 129, 300, 511, 512, 896, 4096, 151936].map(rowThreads),
    [1, 1, 1, 1, 32, 32, 32, 256, 256, 256, 256]);
  const rowKernels: KernelSpec[] = [KERNELS.layernormForward, KERNELS.layernormBackward, KERNELS.rmsnormForward, KERNELS.rmsnormBackward,
    KERNELS.logprobForward, KERNELS.logitsStats];
  for (const spec of rowKernels) {
    // SwiftShader runs a shader without barriers as plain loops; every barrier costs a coroutine switch per lane group
    assert.doesNotMatch(spec.source({ RT: 1 }), /workgroupBarrier/, `${spec.name} at one thread per row`);
    assert.match(spec.source({ RT: 1 }), /@workgroup_size\(64\)/);
    assert.match(spec.source({ RT: 32 }), /@workgroup_size\(64\)/);
    assert.match(spec.source({ RT: 256 }), /@workgroup_size\(256\)/);
    // rows per workgroup: 64, 2, 1
    assert.deepEqual(spec.grid({ N: 130 }, { RT: 1 }), [3, 1, 1]);
    assert.deepEqual(spec.grid({ N: 130 }, { RT: 32 }), [65, 1, 1]);
    assert.deepEqual(spec.grid({ N: 130 }, { RT: 256 }), [130, 1, 1]);
    assert.throws(() => spec.source({}), /RT must be 1, 32 or 256/);
  }
  const reduce: KernelSpec = KERNELS.reduceSum;
  assert.doesNotMatch(reduce.source({ SQUARE: true }), /workgroupBarrier/);
});

test('the GEMM and attention forms: direct below the sizes where tiles pay, barrier-free; tiled above', () => {
  assert.equal(gemmTile(176, 64, 128), 'direct32');
  assert.equal(gemmTile(2048, 2048, 2048), 128);
  assert.equal(gemmTile(1024, 16, 896), 64);
  const direct: KernelSpec = KERNELS.gemmDirect;
  for (const RB of [4, 8]) assert.doesNotMatch(direct.source({ RB }), /workgroupBarrier|var<workgroup>/);
  assert.deepEqual(direct.grid({ M: 176, N: 64 }, { RB: 4 }), [2, 6, 1]);
  assert.deepEqual(direct.grid({ M: 176, N: 64 }, { RB: 8 }), [1, 3, 1]);
  assert.equal(attentionDirect(64), true);
  assert.equal(attentionDirect(65), false);
  for (const spec of [KERNELS.attentionForward, KERNELS.attentionBackwardQuery, KERNELS.attentionBackwardKeyValue] as KernelSpec[]) {
    assert.doesNotMatch(spec.source({ HD: 16, TK: 32, DIRECT: true }), /workgroupBarrier|var<workgroup>/, spec.name);
    assert.match(spec.source({ HD: 16, TK: 32, DIRECT: false }), /workgroupBarrier/, spec.name);
    // direct: one thread per (b, head, position) over a flat range; tiled: 64 positions of one (b, head) per workgroup
    assert.deepEqual(spec.grid({ B: 16, T: 11, NH: 4, NKV: 4 }, { DIRECT: true }), [11, 1, 1]);
    assert.deepEqual(spec.grid({ B: 16, T: 11, NH: 4, NKV: 4 }, { DIRECT: false }), [1, 4, 16]);
  }
});

test('no WebGPU, or no adapter: the error names what is missing', async () => {
  await assert.rejects(acquireDevice(null), (e: unknown) =>
    e instanceof NoWebGpuAdapterError && /navigator\.gpu is undefined/.test(e.message) && /webgpu/.test(e.message));
  const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
  await assert.rejects(acquireDevice(noAdapter), (e: unknown) =>
    e instanceof NoWebGpuAdapterError && /no GPU adapter/.test(e.message) && /Vulkan/.test(e.message) && /SwiftShader/.test(e.message));
});
