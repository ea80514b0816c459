// What the kernels need to know about the CPU beyond its instruction sets: the data cache sizes, from which the
// GEMM derives its cache blocks (kernels_impl.h) instead of constants tuned on one machine.
//
// Plain C structs and functions, no inline code: this header is included by translation units compiled with
// different -m flags (see pool.h for why that matters).
#pragma once
#include <cstdint>

namespace orpo {

struct CacheSizes {
  int64_t l1d;         // bytes, one core's L1 data cache
  int64_t l2;          // bytes, one core's L2 (the slice a core owns where it is shared by a cluster)
  int64_t l3;          // bytes, the whole L3 as reported (0: none); shared by l3_sharing logical CPUs
  int64_t l3_sharing;  // logical CPUs sharing that L3, 0 when the CPU does not say
  int64_t cpus;        // logical CPUs online (what an L3 of unknown sharing is divided by)
  const char* source;  // where the numbers came from: "cpuid leaf 4", "cpuid 0x8000001D", "cpuid 0x80000005/6",
                       // "sysfs", "sysctl", "ORPO_CACHE_SIZES", or "none" (nothing answered: all sizes 0, and the
                       // GEMM keeps its fixed blocks)
};

/**
 * The detected sizes, read once per process. ORPO_CACHE_SIZES="L1d,L2,L3" (bytes, or with a K/M suffix:
 * "48K,2M,105M") replaces them, so one machine can run the blocks another CPU would get.
 */
const CacheSizes& cache_sizes();

}  // namespace orpo
