/// <reference types="@webgpu/types" />
// The WebGPU runtime: owns the device, the buffer pools and a batch of recorded work. Kernels, uploads, copies and
// clears are recorded without waiting on anything; `flush` encodes the whole batch into one command buffer (one
// compute pass per run of kernels, one uniform buffer for all their parameters) and submits it once. `download`
// is the only awaited operation: it flushes, copies into a mappable buffer and maps it.
//
// Kernels are described by KernelSpec entries (./kernel-table.ts). A spec's WGSL names its tensors (`x[i]` is
// element i of the view bound as x); the runtime turns a call into a shader by giving every distinct GPU buffer one
// binding and rewriting `x[i]` to `g2[P.o_x + (i)]`. So views of one buffer (GPT-2's q, k, v inside qkv; dq, dk,
// dv inside dqkv; an output that aliases an input) share a binding, which WebGPU requires when one of them is
// written (writable bindings may not overlap another binding of the same buffer in one dispatch).
import { BufferPool, GpuTensor, TENSOR_USAGE, type ElementType, type GpuAllocation, type PoolStats } from './buffers.js';
import { BufferUsage, MapModeRead, type AcquiredDevice, type WebGpuDeviceInfo } from './device.js';

export type ScalarType = 'u32' | 'i32' | 'f32';
export type Consts = Readonly<Record<string, number | boolean>>;
export type Scalars = Readonly<Record<string, number>>;
export type Grid = readonly [number, number, number];

export interface TensorSlot {
  readonly name: string;
  readonly type: ElementType;
  /** the kernel writes it (its binding becomes read_write) */
  readonly written?: boolean;
}

/** one kernel: a table entry. A new kernel is one more of these. */
export interface KernelSpec {
  readonly name: string;
  /** tensors the WGSL may index; a call may leave some out (null), when its flags tell the kernel not to touch them */
  readonly tensors: readonly TensorSlot[];
  /** uniform parameters, in the struct `P` */
  readonly scalars: Readonly<Record<string, ScalarType>>;
  /** WGSL with entry point `main`; compile-time constants (`consts`) are declared before it */
  readonly source: (consts: Consts) => string;
  /** workgroups to dispatch */
  readonly grid: (scalars: Scalars, consts: Consts) => Grid;
}

/** the bytes each dispatch's parameters take in the batch's uniform buffer (minUniformBufferOffsetAlignment) */
const PARAMS_SLOT_BYTES = 256;
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/** a 1-D range of `count` items in workgroups of `size`, folded into (x, y) when it exceeds the per-dimension cap */
export function grid1d(count: number, size: number): Grid {
  const groups = Math.ceil(count / size);
  if (groups <= MAX_WORKGROUPS_PER_DIMENSION) return [groups, 1, 1];
  const x = MAX_WORKGROUPS_PER_DIMENSION;
  return [x, Math.ceil(groups / x), 1];
}

interface Binding {
  readonly buffer: GPUBuffer;
  readonly type: ElementType;
  written: boolean;
}

interface CompiledKernel {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

type BatchOp =
  | { readonly kind: 'dispatch'; readonly kernel: CompiledKernel; readonly buffers: readonly GPUBuffer[];
    readonly paramsSlot: number; readonly grid: Grid }
  | { readonly kind: 'copy'; readonly src: GPUBuffer; readonly srcByte: number; readonly dst: GPUBuffer;
    readonly dstByte: number; readonly bytes: number }
  | { readonly kind: 'clear'; readonly buffer: GPUBuffer; readonly byte: number; readonly bytes: number };

/**
 * Replaces every `name[expr]` (not preceded by an identifier character or '.') with `replace(expr)`: for a bound
 * tensor `g2[P.o_name + (expr)]`.
 */
export function rewriteTensorAccess(source: string, name: string, replace: (index: string) => string): string {
  const pattern = new RegExp(`(?<![A-Za-z0-9_.])${name}\\[`, 'g');
  let out = '';
  let last = 0;
  for (let m = pattern.exec(source); m; m = pattern.exec(source)) {
    const open = m.index + m[0].length;
    let depth = 1;
    let close = open;
    for (; close < source.length && depth > 0; close++) {
      if (source[close] === '[') depth++;
      else if (source[close] === ']') depth--;
    }
    if (depth !== 0) throw new Error(`unbalanced brackets after ${name}[ in WGSL`);
    out += source.slice(last, m.index) + replace(source.slice(open, close - 1));
    last = close;
    pattern.lastIndex = close;
  }
  return out + source.slice(last);
}

function wgslConst(name: string, value: number | boolean): string {
  if (typeof value === 'boolean') return `const ${name}: bool = ${value};`;
  if (!Number.isInteger(value) || value < 0) throw new Error(`constant ${name} = ${value}: only booleans and u32`);
  return `const ${name}: u32 = ${value}u;`;
}

// ------------------------------------------------------------------------------------------ polling on CPU adapters

type SetImmediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
const timers = globalThis as { setImmediate?: SetImmediate };
let pollThrottles = 0;
let unthrottledSetImmediate: SetImmediate | null = null;

/** Dawn's polling callback: a native function, nameless and without parameters (promise resolvers take one) */
function isDawnPoll(callback: unknown): boolean {
  return typeof callback === 'function' && callback.length === 0 && callback.name === '' &&
    /\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(callback));
}

/**
 * Dawn's Node binding (npm `webgpu`) waits for the device (mapAsync, onSubmittedWorkDone, popErrorScope) by queueing
 * a native callback with setImmediate that processes the device's events and queues itself again while any such
 * promise is pending: a busy loop on the main thread (331 turns for one small download on SwiftShader). On a CPU
 * adapter that loop takes a core from the threads doing the device's work: the demo's step took 1.6-1.7x as long on
 * this 2-core machine (243 against 150 ms). So while a runtime on a software adapter lives, setImmediate hands that
 * callback to setTimeout(0), a turn about every millisecond; every other callback goes through as before. Browsers
 * have no setImmediate (nothing changes there), nor does anything change on a GPU, where the loop costs a host core
 * but not the device's time, and answers soonest. Returns the release (the last one restores setImmediate).
 */
function throttleDawnPolling(): () => void {
  const original = timers.setImmediate;
  if (typeof original !== 'function') return () => {};
  if (pollThrottles++ === 0) {
    unthrottledSetImmediate = original;
    const throttled: SetImmediate = function (this: unknown, callback, ...args) {
      return isDawnPoll(callback) ? setTimeout(callback, 0, ...args) : original.call(this, callback, ...args);
    };
    // util.promisify(setImmediate) and the like read symbol-keyed properties of the function
    for (const key of Object.getOwnPropertySymbols(original)) {
      Object.defineProperty(throttled, key, Object.getOwnPropertyDescriptor(original, key)!);
    }
    timers.setImmediate = throttled;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--pollThrottles === 0 && unthrottledSetImmediate) {
      timers.setImmediate = unthrottledSetImmediate;
      unthrottledSetImmediate = null;
    }
  };
}

export interface BatchStats {
  readonly submits: number;
  readonly dispatches: number;
}

export class WebGpuRuntime {
  readonly device: GPUDevice;
  readonly info: WebGpuDeviceInfo;
  /** kept so the GPU instance outlives every call (see AcquiredDevice.gpu); dropped by destroy() */
  private gpu: GPU | null;
  private readonly tensors: BufferPool;
  private readonly uniforms: BufferPool;
  private readonly staging: BufferPool;
  private readonly pipelines = new Map<string, CompiledKernel>();
  private ops: BatchOp[] = [];
  private params: ArrayBuffer[] = [];
  private releaseAfterSubmit: Array<[BufferPool, GpuAllocation]> = [];
  private pendingErrors: Array<Promise<string | null>> = [];
  private submits = 0;
  private dispatches = 0;
  /** undoes throttleDawnPolling (software adapters only) */
  private readonly releasePolling: () => void;

  constructor(acquired: AcquiredDevice) {
    this.device = acquired.device;
    this.gpu = acquired.gpu;
    this.info = acquired.info;
    this.releasePolling = this.info.isSoftware ? throttleDawnPolling() : () => {};
    this.tensors = new BufferPool(this.device, TENSOR_USAGE, 'tensor', this.info.limits.maxBufferSize);
    this.uniforms = new BufferPool(this.device, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'params');
    this.staging = new BufferPool(this.device, BufferUsage.COPY_SRC | BufferUsage.COPY_DST, 'upload');
  }

  // ------------------------------------------------------------------------------------------ memory

  /** a new tensor of `length` elements; its contents are undefined until written (use zero() for zeros) */
  alloc(length: number, dtype: ElementType = 'f32'): GpuTensor {
    if (!(Number.isInteger(length) && length >= 0)) throw new RangeError(`alloc: bad length ${length}`);
    if (length * 4 > this.info.limits.maxStorageBufferBindingSize) {
      throw new RangeError(`alloc: ${length * 4} bytes exceed the adapter's largest storage binding ` +
        `(${this.info.limits.maxStorageBufferBindingSize} bytes)`);
    }
    return new GpuTensor(this.tensors.acquire(Math.max(4, length * 4)), dtype, 0, length);
  }

  /** returns a tensor's buffer to the pool; work already recorded on it still runs (release happens after submit) */
  free(tensor: GpuTensor): void {
    if (tensor.offset !== 0) throw new Error('free: pass the tensor alloc returned, not a view');
    if (tensor.allocation.freed) throw new Error('free: tensor freed twice');
    tensor.allocation.freed = true;
    this.releaseAfterSubmit.push([this.tensors, tensor.allocation]);
  }

  /** a tensor holding `data`, recorded in the batch (no flush) */
  fromArray(data: Float32Array | Int32Array): GpuTensor {
    const t = this.alloc(data.length, data instanceof Int32Array ? 'i32' : 'f32');
    this.upload(t, data);
    return t;
  }

  /**
   * Copies `data` into `dst` in batch order: work recorded before this sees the old contents, work after it the new.
   * The bytes go to a staging buffer now (queue.writeBuffer) and a copy is recorded.
   */
  upload(dst: GpuTensor, data: Float32Array | Int32Array): void {
    if (data.length !== dst.length) throw new RangeError(`upload: ${data.length} elements into a view of ${dst.length}`);
    if ((data instanceof Int32Array ? 'i32' : 'f32') !== dst.dtype) throw new TypeError(`upload: ${data.constructor.name} into a ${dst.dtype} tensor`);
    if (data.length === 0) return;
    const stage = this.staging.acquire(data.byteLength);
    this.device.queue.writeBuffer(stage.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    this.ops.push({ kind: 'copy', src: stage.buffer, srcByte: 0, dst: dst.allocation.buffer, dstByte: dst.byteOffset,
      bytes: data.byteLength });
    this.releaseAfterSubmit.push([this.staging, stage]);
  }

  /** dst = src (same length), recorded in the batch */
  copy(dst: GpuTensor, src: GpuTensor): void {
    if (dst.length !== src.length) throw new RangeError(`copy: ${src.length} elements into ${dst.length}`);
    if (dst.length === 0) return;
    this.ops.push({ kind: 'copy', src: src.allocation.buffer, srcByte: src.byteOffset, dst: dst.allocation.buffer,
      dstByte: dst.byteOffset, bytes: dst.byteLength });
  }

  /** tensor = 0, recorded in the batch */
  zero(tensor: GpuTensor): void {
    if (tensor.length === 0) return;
    this.ops.push({ kind: 'clear', buffer: tensor.allocation.buffer, byte: tensor.byteOffset, bytes: tensor.byteLength });
  }

  /** the tensor's contents once every recorded operation has run */
  async download(tensor: GpuTensor): Promise<Float32Array> {
    return new Float32Array(await this.downloadBytes(tensor));
  }

  async downloadInt32(tensor: GpuTensor): Promise<Int32Array> {
    return new Int32Array(await this.downloadBytes(tensor));
  }

  private async downloadBytes(tensor: GpuTensor): Promise<ArrayBuffer> {
    const bytes = tensor.byteLength;
    const readback = bytes > 0
      ? this.device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'readback' })
      : null;
    if (readback) {
      this.ops.push({ kind: 'copy', src: tensor.allocation.buffer, srcByte: tensor.byteOffset, dst: readback, dstByte: 0, bytes });
    }
    this.flush();
    try {
      // an error (a kernel that did not compile, a bad copy) invalidates the whole batch it was recorded in
      await this.throwRecordedErrors();
      if (!readback) return new ArrayBuffer(0);
      await readback.mapAsync(MapModeRead);
      const copy = readback.getMappedRange().slice(0);
      readback.unmap();
      return copy;
    } finally {
      readback?.destroy();
    }
  }

  /** waits until the GPU has finished everything submitted (for timing) */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.throwRecordedErrors();
  }

  memoryStats(): PoolStats {
    return this.tensors.stats();
  }

  batchStats(): BatchStats {
    return { submits: this.submits, dispatches: this.dispatches };
  }

  destroy(): void {
    this.flush();
    this.tensors.trim();
    this.uniforms.trim();
    this.staging.trim();
    this.device.destroy();
    this.gpu = null;
    this.releasePolling();
  }

  // ------------------------------------------------------------------------------------------ kernels

  /**
   * Records one kernel call. `tensors` maps the spec's tensor names to views (null or missing: absent, bound to a
   * dummy the kernel must not touch); `scalars` fills the spec's uniform parameters; `consts` are compile-time
   * constants (each distinct set is one more pipeline: keep them for what must be constant, like array sizes).
   */
  dispatch(spec: KernelSpec, tensors: Readonly<Record<string, GpuTensor | null | undefined>>, scalars: Scalars,
    consts: Consts = {}): void {
    const grid = spec.grid(scalars, consts);
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return;
    for (const g of grid) {
      if (g > MAX_WORKGROUPS_PER_DIMENSION) throw new RangeError(`${spec.name}: grid ${grid.join('x')} exceeds 65535 workgroups per dimension`);
    }
    // one binding per distinct GPU buffer
    const bindings: Binding[] = [];
    const bindingOf = new Map<string, number>();
    const present: Array<[TensorSlot, GpuTensor]> = [];
    for (const slot of spec.tensors) {
      // a tensor the call leaves out is bound to a small dummy, so that a flag (a uniform) can switch its use off
      // without a second pipeline: with or without a bias, the gemm is one shader
      const t = tensors[slot.name] ?? this.dummy(slot.type);
      if (t.dtype !== slot.type) throw new TypeError(`${spec.name}: ${slot.name} must be ${slot.type}, got ${t.dtype}`);
      if (t.allocation.freed) throw new Error(`${spec.name}: ${slot.name} was freed`);
      let index = bindings.findIndex((b) => b.buffer === t.allocation.buffer);
      if (index < 0) {
        index = bindings.length;
        bindings.push({ buffer: t.allocation.buffer, type: slot.type, written: false });
      } else if (bindings[index].type !== slot.type) {
        throw new TypeError(`${spec.name}: ${slot.name} shares a buffer with a tensor of another element type`);
      }
      if (slot.written) bindings[index].written = true;
      bindingOf.set(slot.name, index);
      present.push([slot, t]);
    }
    const signature = present.map(([slot]) => `${slot.name}:${bindingOf.get(slot.name)}`).join(',') + '|' +
      bindings.map((b) => (b.written ? 'w' : 'r')).join('');
    const key = `${spec.name}|${JSON.stringify(consts)}|${signature}`;
    let kernel = this.pipelines.get(key);
    if (!kernel) {
      kernel = this.compile(spec, consts, present.map(([slot]) => slot), bindingOf, bindings);
      this.pipelines.set(key, kernel);
    }
    // parameters: the views' offsets, then the scalars, in the struct's order
    const params = new ArrayBuffer(PARAMS_SLOT_BYTES);
    const view = new DataView(params);
    let at = 0;
    for (const [, t] of present) { view.setUint32(at, t.offset, true); at += 4; }
    for (const [name, type] of Object.entries(spec.scalars)) {
      const value = scalars[name];
      if (value === undefined || (Number.isNaN(value) && type !== 'f32')) throw new Error(`${spec.name}: scalar ${name} missing`);
      if (type === 'f32') view.setFloat32(at, value, true);
      else if (type === 'i32') view.setInt32(at, value, true);
      else view.setUint32(at, value, true);
      at += 4;
    }
    this.params.push(params);
    this.ops.push({ kind: 'dispatch', kernel, buffers: bindings.map((b) => b.buffer), paramsSlot: this.params.length - 1, grid });
  }

  private readonly dummies = new Map<ElementType, GpuTensor>();

  /** the stand-in for a tensor a call leaves out (never read or written: the kernel's flags say it is absent) */
  private dummy(type: ElementType): GpuTensor {
    let t = this.dummies.get(type);
    if (!t) this.dummies.set(type, (t = this.alloc(4, type)));
    return t;
  }

  /** a scratch tensor for work recorded now; it returns to the pool after the batch is submitted */
  scratch(length: number, dtype: ElementType = 'f32'): GpuTensor {
    const t = this.alloc(length, dtype);
    this.releaseAfterSubmit.push([this.tensors, t.allocation]);
    return t;
  }

  private compile(spec: KernelSpec, consts: Consts, slots: readonly TensorSlot[], bindingOf: ReadonlyMap<string, number>,
    bindings: readonly Binding[]): CompiledKernel {
    const fields = [...slots.map((s) => `o_${s.name}: u32`), ...Object.entries(spec.scalars).map(([n, t]) => `${n}: ${t}`)];
    if (fields.length * 4 > PARAMS_SLOT_BYTES) throw new Error(`${spec.name}: too many parameters`);
    let body = spec.source(consts);
    for (const s of slots) {
      body = rewriteTensorAccess(body, s.name, (index) => `g${bindingOf.get(s.name)! + 1}[P.o_${s.name} + (${index})]`);
    }

    const code = [
      `struct Params { ${fields.length > 0 ? fields.join(', ') : 'unused: u32'} }`,
      '@group(0) @binding(0) var<uniform> P: Params;',
      ...bindings.map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.written ? 'read_write' : 'read'}> g${i + 1}: array<${b.type}>;`),
      ...Object.entries(consts).map(([n, v]) => wgslConst(n, v)),
      body,
    ].join('\n');
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label: spec.name });
    const layout = this.device.createBindGroupLayout({
      label: spec.name,
      entries: [
        { binding: 0, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: 'uniform' } },
        ...bindings.map((b, i): GPUBindGroupLayoutEntry => ({
          binding: i + 1, visibility: 4, buffer: { type: b.written ? 'storage' : 'read-only-storage' },
        })),
      ],
    });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.pendingErrors.push(this.device.popErrorScope().then(async (error) => {
      if (!error) return null;
      const info = await module.getCompilationInfo();
      const messages = info.messages.map((m) => `  ${m.type} ${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
      return `kernel ${spec.name} ${JSON.stringify(consts)}: ${error.message}\n${messages}`;
    }));
    return { pipeline, layout };
  }

  // ------------------------------------------------------------------------------------------ submission

  /** encodes everything recorded into one command buffer and submits it */
  flush(): void {
    if (this.ops.length === 0) {
      this.releaseRecorded();
      return;
    }
    const ops = this.ops;
    const params = this.params;
    this.ops = [];
    this.params = [];
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    let uniform: GpuAllocation | null = null;
    if (params.length > 0) {
      uniform = this.uniforms.acquire(params.length * PARAMS_SLOT_BYTES);
      const all = new Uint8Array(params.length * PARAMS_SLOT_BYTES);
      params.forEach((p, i) => all.set(new Uint8Array(p), i * PARAMS_SLOT_BYTES));
      this.device.queue.writeBuffer(uniform.buffer, 0, all);
      this.releaseAfterSubmit.push([this.uniforms, uniform]);
    }
    const encoder = this.device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    for (const op of ops) {
      if (op.kind === 'dispatch') {
        pass ??= encoder.beginComputePass();
        pass.setPipeline(op.kernel.pipeline);
        pass.setBindGroup(0, this.device.createBindGroup({
          layout: op.kernel.layout,
          entries: [
            { binding: 0, resource: { buffer: uniform!.buffer, offset: op.paramsSlot * PARAMS_SLOT_BYTES, size: PARAMS_SLOT_BYTES } },
            ...op.buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
          ],
        }));
        pass.dispatchWorkgroups(op.grid[0], op.grid[1], op.grid[2]);
        this.dispatches++;
      } else {
        if (pass) { pass.end(); pass = null; }
        if (op.kind === 'copy') encoder.copyBufferToBuffer(op.src, op.srcByte, op.dst, op.dstByte, op.bytes);
        else encoder.clearBuffer(op.buffer, op.byte, op.bytes);
      }
    }
    pass?.end();
    this.device.queue.submit([encoder.finish()]);
    this.submits++;
    const describe = (what: string) => (e: GPUError | null): string | null => (e ? `${what}: ${e.message}` : null);
    this.pendingErrors.push(this.device.popErrorScope().then(describe('out of memory')));
    this.pendingErrors.push(this.device.popErrorScope().then(describe('validation')));
    this.releaseRecorded();
  }

  private releaseRecorded(): void {
    for (const [pool, allocation] of this.releaseAfterSubmit) pool.release(allocation);
    this.releaseAfterSubmit = [];
  }

  private async throwRecordedErrors(): Promise<void> {
    const pending = this.pendingErrors;
    this.pendingErrors = [];
    const errors = (await Promise.all(pending)).filter((e): e is string => e !== null);
    if (errors.length > 0) throw new Error(`WebGPU errors:\n${errors.join('\n')}`);
  }
}
