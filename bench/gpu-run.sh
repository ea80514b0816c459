#!/bin/bash
# The one prepared script for a lent GPU machine (issues 15 and 16): the WebGPU GEMM/attention bench and the
# training-step bench, on the GPU through Dawn's Vulkan backend; then the native CPU kernels on that machine's host
# CPU (a server Xeon may have AMX, which this project's own machine lacks): the bf16 probe's choice, each bf16 path
# (fma, dpbf16, amx) against float32, and the frozen-bf16-weight products. That machine reaches nothing outside, so the Vulkan loader Dawn
# needs (Debian's libvulkan1; the NVIDIA driver brings only its ICD) is fetched here first and carried:
#
#   here:    npm run build && bash bench/gpu-run.sh --fetch
#            (libvulkan1's .deb and the webgpu package with its linux-x64 Dawn only, 22 MB, into bench/out/gpu-deps/)
#   device:  run(command="bash bench/gpu-run.sh", carry=["dist", "bench/out/gpu-deps", "build"])
#            (36 MB of the 64 MB a run carries; build/ is the addon, compiled for any x86-64, kernels chosen at run time)
#   CPU only: CPU_ONLY=1 bash bench/gpu-run.sh
#
# Writes bench/out/webgpu.json and bench/out/webgpu-step.json (returned through $OUT when set) and prints the
# machine line. --peak-tflops: the H200's fp32 peak (67 TFLOP/s dense, NVIDIA's data sheet).
set -u
DEPS="$(dirname "$0")/out/gpu-deps"
if [ "${1:-}" = "--fetch" ]; then
  mkdir -p "$DEPS" && rm -rf "$DEPS/webgpu" && mkdir -p "$DEPS/webgpu/dist"
  cp node_modules/webgpu/package.json "$DEPS/webgpu/" && cp node_modules/webgpu/dist/*.js "$DEPS/webgpu/dist/" 2>/dev/null
  cp -r node_modules/webgpu/dist/linux-x64 "$DEPS/webgpu/dist/" && cp node_modules/webgpu/*.js "$DEPS/webgpu/" 2>/dev/null
  (cd "$DEPS" && apt-get download libvulkan1) && du -sh "$DEPS"
  exit $?
fi
# the carried webgpu package where node resolves it (node_modules is not part of the copied tree)
if [ ! -d node_modules/webgpu ]; then mkdir -p node_modules && cp -r "$DEPS/webgpu" node_modules/webgpu; fi
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  # unpack the carried loader without installing it (no root needed)
  for deb in "$DEPS"/libvulkan1_*.deb; do dpkg -x "$deb" "$DEPS/root"; done
  export LD_LIBRARY_PATH="$(ls -d "$DEPS"/root/usr/lib/*-linux-gnu | head -1):${LD_LIBRARY_PATH:-}"
fi
for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && export VK_ICD_FILENAMES="$icd" && break
done
cpu_benches() {
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) CPUs); flags: $(grep -m1 -o -w -E 'avx512f|avx512_bf16|amx_tile|amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  node -e "import('./dist/src/backend/native/addon.js').then(async (m) => { const a = m.loadNativeAddon(); console.log(JSON.stringify(a.ok ? a.addon.kernelInfo() : a.reason)); })" || true
  timeout 200 node dist/bench/gemm.js --threads 1,2 --reps 3 --bf16 all || echo "bench/gemm failed: $?"
  if [ -n "${OUT:-}" ]; then cp bench/out/gemm.json "$OUT"/ 2>/dev/null; fi
}
if [ -n "${CPU_ONLY:-}" ]; then cpu_benches; exit 0; fi
echo "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null); $(nproc) CPUs; node $(node --version); VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-unset}"
PEAK="${PEAK_TFLOPS:-67}"
timeout 240 node dist/bench/webgpu.js --peak-tflops "$PEAK" || echo "bench/webgpu failed: $?"
timeout 300 node dist/bench/webgpu-step.js --peak-tflops "$PEAK" || echo "bench/webgpu-step failed: $?"
if [ -n "${OUT:-}" ]; then cp bench/out/webgpu.json bench/out/webgpu-step.json "$OUT"/ 2>/dev/null; fi
cpu_benches
