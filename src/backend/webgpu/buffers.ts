/// <reference types="@webgpu/types" />
// Buffers the backend owns: opaque tensors (a pooled GPUBuffer plus an element view) and the pool behind them.
//
// Every element is 4 bytes (float32, int32, or uint32: the words of a bfloat16 buffer, two values each, see
// GpuTensor.as), so views are (offset, length) in elements. Kernels bind whole
// buffers and receive element offsets as uniforms: storage-binding offsets must be 256-byte aligned, which a
// view such as GPT-2's k = qkv.subarray(C) is not.
import { BufferUsage } from './device.js';

export type ElementType = 'f32' | 'i32' | 'u32';

/** one pooled allocation; never handed out directly, only through tensors */
export class GpuAllocation {
  /** free() was called: no new work may use it (work recorded before still runs) */
  freed = false;
  /** back in the pool's free list */
  released = false;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number, readonly sizeClass: number) {}
}

/** an element view of a backend-owned buffer: the GPU counterpart of a typed array (or its subarray) */
export class GpuTensor {
  /** @internal use WebGpuRuntime.alloc */
  constructor(readonly allocation: GpuAllocation, readonly dtype: ElementType, readonly offset: number,
    readonly length: number) {}

  /** a view of `length` elements starting `offset` elements into this one (as TypedArray.subarray(offset, offset + length)) */
  view(offset: number, length: number = this.length - offset): GpuTensor {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.length && Number.isInteger(offset) && Number.isInteger(length))) {
      throw new RangeError(`GpuTensor.view(${offset}, ${length}) outside a tensor of ${this.length} elements`);
    }
    return new GpuTensor(this.allocation, this.dtype, this.offset + offset, length);
  }

  /**
   * The same elements read as another 4-byte type (the same buffer, offset and length; no copy). A bfloat16 weight
   * lives in a float32 tensor (Bf16Buffer: only bytes travel), and its kernels bind it as u32 words: a float32
   * binding could flush a word whose high value is a bfloat16 zero or subnormal (a float32 subnormal) and lose the
   * low value with it.
   */
  as(dtype: ElementType): GpuTensor {
    return new GpuTensor(this.allocation, dtype, this.offset, this.length);
  }

  get byteOffset(): number {
    return this.offset * 4;
  }

  get byteLength(): number {
    return this.length * 4;
  }
}

const MIN_CLASS_BYTES = 256;
/** above this, classes grow by a fixed step instead of doubling, so a 600 MiB logits buffer does not take 1 GiB */
const DOUBLING_LIMIT_BYTES = 64 << 20;
const LARGE_STEP_BYTES = 16 << 20;

/** the size class a request of `bytes` is served from: powers of two, then multiples of 16 MiB */
export function sizeClassOf(bytes: number): number {
  if (bytes <= MIN_CLASS_BYTES) return MIN_CLASS_BYTES;
  if (bytes <= DOUBLING_LIMIT_BYTES) return 2 ** Math.ceil(Math.log2(bytes));
  return Math.ceil(bytes / LARGE_STEP_BYTES) * LARGE_STEP_BYTES;
}

export interface PoolStats {
  /** bytes of GPU buffers currently handed out */
  readonly liveBytes: number;
  /** bytes of GPU buffers kept for reuse */
  readonly pooledBytes: number;
  readonly created: number;
  readonly reused: number;
}

/**
 * A size-class pool of GPU buffers with one usage. A released buffer goes back to its class's free list: reusing
 * it in a later submission is safe because the queue runs submissions (and writeBuffer calls) in order.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private liveBytes = 0;
  private pooledBytes = 0;
  private created = 0;
  private reused = 0;

  /** maxBytes: the device's maxBufferSize; a request whose class would exceed it gets its exact size instead */
  constructor(private readonly device: GPUDevice, private readonly usage: number, private readonly label: string,
    private readonly maxBytes = Infinity) {}

  acquire(bytes: number): GpuAllocation {
    const sizeClass = sizeClassOf(bytes);
    const size = sizeClass <= this.maxBytes ? sizeClass : bytes;
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.reused++;
      this.pooledBytes -= size;
    } else {
      buffer = this.device.createBuffer({ size, usage: this.usage, label: `${this.label} ${size}` });
      this.created++;
    }
    this.liveBytes += size;
    return new GpuAllocation(buffer, bytes, size);
  }

  release(allocation: GpuAllocation): void {
    if (allocation.released) throw new Error(`${this.label}: buffer released twice`);
    allocation.released = true;
    this.liveBytes -= allocation.sizeClass;
    this.pooledBytes += allocation.sizeClass;
    let list = this.free.get(allocation.sizeClass);
    if (!list) this.free.set(allocation.sizeClass, (list = []));
    list.push(allocation.buffer);
  }

  /** destroys every pooled (not live) buffer */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }

  stats(): PoolStats {
    return { liveBytes: this.liveBytes, pooledBytes: this.pooledBytes, created: this.created, reused: this.reused };
  }
}

/** the usage of every tensor buffer: bound as storage, filled by writeBuffer/copies, read back by copies */
export const TENSOR_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
