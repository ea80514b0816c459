// The AMX bf16 GEMM for the addon (see amx.h): run-time enablement and the hardware instantiation of amx_impl.h.
// Built once, in binding.gyp's AVX-512 library (AMX cores all have AVX-512, so the packing loops may use it); the
// AMX instructions themselves are only inside target attributes, and nothing here runs unless the AVX-512 table was
// chosen and hardware() said yes.
#include "amx.h"

#include "amx_impl.h"

#if defined(__linux__) && defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace orpo {
namespace amx {

// -DORPO_AMX_EMULATE (tests only, never in the addon): hardware() says yes and everything below runs on TilesEmu, so a
// kernel table linked with this build takes its whole bf16 dispatch through the AMX path on a CPU without AMX
// (test/native-amx.test.ts runs native/test/parity.cc on it).
#if defined(ORPO_AMX_EMULATE)
using Tiles = TilesEmu;
#elif ORPO_AMX_HW
using Tiles = TilesHw;
#endif

bool emulated() {
#if defined(ORPO_AMX_EMULATE)
  return true;
#else
  return false;
#endif
}

bool hardware() {
  static const bool ok = [] {
#if defined(ORPO_AMX_EMULATE)
    return true;
#elif ORPO_AMX_HW && defined(__linux__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = (edx >> 22) & 1u, amx_tile = (edx >> 24) & 1u;
    if (!amx_bf16 || !amx_tile) return false;
    // Linux keeps the 8 KiB tile data state off until a process asks (the signal frame grows by it): without this
    // the first tile instruction faults. Process-wide, so the pool's threads inherit it.
    constexpr long kReqXcompPerm = 0x1023, kGetXcompPerm = 0x1022, kXtileData = 18;
    if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) != 0) return false;
    unsigned long granted = 0;
    if (syscall(SYS_arch_prctl, kGetXcompPerm, &granted) != 0) return false;
    return ((granted >> kXtileData) & 1ul) != 0;
#else
    return false;
#endif
  }();
  return ok;
}

bool usable() {
  static const bool ok = [] {
#if ORPO_AMX_HW || defined(ORPO_AMX_EMULATE)
    if (!hardware()) return false;
    const CheckResult r = self_check<Tiles>();
    if (!r.ok)
      std::fprintf(stderr,
                   "orpo: AMX bf16 GEMM failed its start-up check (%s product, element %lld,%lld: %.9g, want %.9g), "
                   "so bf16 products use the AVX-512 paths; please report this CPU\n",
                   r.layout, static_cast<long long>(r.i), static_cast<long long>(r.j), r.got, r.want);
    return r.ok;
#else
    return false;
#endif
  }();
  return ok;
}

void gemm_serial(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs,
                 int64_t bcs, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t kc, int64_t mc, int64_t nc) {
#if ORPO_AMX_HW || defined(ORPO_AMX_EMULATE)
  gemm<Tiles, float>(c, ldc, a, ars, acs, b, brs, bcs, M, N, K, accumulate, kc, mc, nc);
#else
  std::fprintf(stderr, "orpo: AMX GEMM called in a build without it\n");
  std::abort();
#endif
}

void gemm_serial(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const uint16_t* b, int64_t brs,
                 int64_t bcs, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t kc, int64_t mc, int64_t nc) {
#if ORPO_AMX_HW || defined(ORPO_AMX_EMULATE)
  gemm<Tiles, uint16_t>(c, ldc, a, ars, acs, b, brs, bcs, M, N, K, accumulate, kc, mc, nc);
#else
  std::fprintf(stderr, "orpo: AMX GEMM called in a build without it\n");
  std::abort();
#endif
}

}  // namespace amx
}  // namespace orpo
