/// <reference types="@webgpu/types" />
// Acquiring a WebGPU adapter and device, in a browser (navigator.gpu) or in Node (the `webgpu` package, Dawn,
// passed in by ./node-gpu.ts so that this module imports nothing from Node).

/** GPUBufferUsage / GPUMapMode values, fixed by the WebGPU spec: Node does not define the globals */
export const BufferUsage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
export const MapModeRead = 0x1;

export class NoWebGpuAdapterError extends Error {
  constructor(detail: string) {
    super(`WebGPU backend: ${detail}`);
    this.name = 'NoWebGpuAdapterError';
  }
}

export interface WebGpuDeviceInfo {
  /** vendor / architecture / device / description as the adapter reports them (any may be empty) */
  readonly adapter: string;
  /** true for CPU implementations (SwiftShader, llvmpipe): correct, but not a speed number */
  readonly isSoftware: boolean;
  readonly limits: {
    readonly maxStorageBuffersPerShaderStage: number;
    readonly maxComputeWorkgroupStorageSize: number;
    readonly maxStorageBufferBindingSize: number;
    readonly maxBufferSize: number;
  };
  readonly features: readonly string[];
}

export interface AcquiredDevice {
  /** held for the device's lifetime: Dawn in Node tears its instance down when the GPU object is collected */
  readonly gpu: GPU;
  readonly device: GPUDevice;
  readonly info: WebGpuDeviceInfo;
}

function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  const parts = [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s && s.length > 0);
  return parts.length > 0 ? parts.join(' / ') : 'unnamed adapter';
}

/**
 * An adapter from `gpu` (default: the browser's navigator.gpu), and a device with the adapter's own maxima for
 * the limits the kernels care about (the defaults, e.g. 128 MiB storage bindings, are too small for a vocabulary's
 * logits). Throws NoWebGpuAdapterError naming what is missing.
 */
export async function acquireDevice(gpu?: GPU | null, powerPreference: GPUPowerPreference = 'high-performance'):
  Promise<AcquiredDevice> {
  const source = gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!source) {
    throw new NoWebGpuAdapterError('no WebGPU implementation: navigator.gpu is undefined (a browser without WebGPU, ' +
      'or Node without the `webgpu` package: use acquireNodeDevice from src/backend/webgpu/node-gpu.ts)');
  }
  const adapter = await source.requestAdapter({ powerPreference });
  if (!adapter) {
    throw new NoWebGpuAdapterError('requestAdapter() found no GPU adapter. Node needs a Vulkan (Linux), Metal (macOS) ' +
      'or Direct3D 12 (Windows) driver: on Linux the Vulkan loader (libvulkan1) beside the GPU driver, or for a CPU ' +
      'fallback SwiftShader (LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)');
  }
  const a = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
  };
  const device = await adapter.requestDevice({ requiredLimits });
  const name = describeAdapter(adapter);
  return {
    gpu: source,
    device,
    info: {
      adapter: name,
      isSoftware: /swiftshader|llvmpipe|software|cpu/i.test(name) || (adapter.info as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true,
      limits: {
        maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
        maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
        maxBufferSize: device.limits.maxBufferSize,
      },
      features: [...adapter.features],
    },
  };
}
