/// <reference types="@webgpu/types" />
// Node's WebGPU: Dawn through the npm `webgpu` package, loaded on demand so that the rest of the backend (and a
// browser bundle) never imports it. Dawn picks Vulkan / Metal / D3D12; on a machine without a GPU, SwiftShader's
// Vulkan ICD (Debian's chromium package ships one) gives a CPU adapter: the environment variables must be set
// when the process starts (LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json).
import { acquireDevice, NoWebGpuAdapterError, type AcquiredDevice } from './device.js';

interface WebGpuPackage {
  create(options: string[]): GPU;
}

/** the `webgpu` package's GPU object; throws NoWebGpuAdapterError when the package or its binary is missing */
export async function nodeGpu(dawnOptions: string[] = []): Promise<GPU> {
  let pkg: WebGpuPackage;
  try {
    pkg = (await import('webgpu')) as unknown as WebGpuPackage;
  } catch (e) {
    throw new NoWebGpuAdapterError(`the npm package \`webgpu\` (Dawn for Node) could not be loaded: ${(e as Error).message}`);
  }
  return pkg.create(dawnOptions);
}

export async function acquireNodeDevice(dawnOptions: string[] = []): Promise<AcquiredDevice> {
  return acquireDevice(await nodeGpu(dawnOptions));
}

/** the WebGPU backend in Node (Dawn) */
export async function createNodeWebGpuBackend(dawnOptions: string[] = []): Promise<import('./index.js').WebGpuBackend> {
  const { webGpuBackendOn } = await import('./index.js');
  return webGpuBackendOn(await acquireNodeDevice(dawnOptions));
}
