// Cache size detection; see cpu.h. Compiled once, with the generic flags.
//
// Order: ORPO_CACHE_SIZES, then the CPU itself on x86-64 (cpuid: what Linux's sysfs is built from there, and
// present in containers and VMs that hide /sys/devices/system/cpu/cpu0/cache), then sysfs (Linux on arm64 and
// anything cpuid did not answer), then sysctl (macOS). Nothing answering leaves zeros and source "none".
#include "cpu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

namespace orpo {
namespace {

/** "48K", "2M", "1048576" -> bytes; 0 when it is not a size */
int64_t parse_size(const char* s, const char** end) {
  char* e = nullptr;
  const double v = std::strtod(s, &e);
  if (e == s || !(v >= 0)) return 0;
  double scale = 1;
  if (*e == 'K' || *e == 'k') scale = 1024.0, e++;
  else if (*e == 'M' || *e == 'm') scale = 1024.0 * 1024.0, e++;
  else if (*e == 'G' || *e == 'g') scale = 1024.0 * 1024.0 * 1024.0, e++;
  if (end) *end = e;
  return static_cast<int64_t>(v * scale);
}

bool from_env(CacheSizes* c) {
  const char* env = std::getenv("ORPO_CACHE_SIZES");
  if (!env || !*env) return false;
  int64_t v[3] = {0, 0, 0};
  const char* p = env;
  for (int i = 0; i < 3 && *p; i++) {
    v[i] = parse_size(p, &p);
    if (*p == ',') p++;
  }
  if (v[0] <= 0 || v[1] <= 0) {
    std::fprintf(stderr, "orpo: ignoring ORPO_CACHE_SIZES=%s (want L1d,L2[,L3] in bytes or with K/M: 48K,2M,32M)\n", env);
    return false;
  }
  *c = CacheSizes{v[0], v[1], v[2], 0, 0, "ORPO_CACHE_SIZES"};
  return true;
}

#if defined(__x86_64__) || defined(__i386__)
/**
 * The deterministic cache parameter leaves (Intel leaf 4; AMD 0x8000001D, the same layout): one subleaf per cache,
 * size = ways x partitions x line size x sets, and how many logical CPUs share it.
 */
bool from_cpuid_leaf(unsigned leaf, CacheSizes* c) {
  bool any = false;
  for (unsigned sub = 0; sub < 16; sub++) {
    unsigned a, b, cx, d;
    if (!__get_cpuid_count(leaf, sub, &a, &b, &cx, &d)) return any;
    const unsigned type = a & 31;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const unsigned level = (a >> 5) & 7;
    const int64_t size = int64_t((b >> 22) + 1) * int64_t(((b >> 12) & 0x3ff) + 1) * int64_t((b & 0xfff) + 1) *
                         (int64_t(cx) + 1);
    const int64_t sharing = ((a >> 14) & 0xfff) + 1;
    if (level == 1) c->l1d = size;
    if (level == 2) c->l2 = size;
    if (level == 3) c->l3 = size, c->l3_sharing = sharing;
    any = true;
  }
  return any;
}

bool from_cpuid(CacheSizes* c) {
  unsigned a, b, cx, d;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return false;
  const unsigned max_leaf = a;
  char vendor[13] = {0};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &cx, 4);
  const bool amd = std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
  if (!amd && max_leaf >= 4 && from_cpuid_leaf(4, c) && c->l1d && c->l2) {
    c->source = "cpuid leaf 4";
    return true;
  }
  const unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (amd && max_ext >= 0x8000001Du && __get_cpuid(0x80000001u, &a, &b, &cx, &d) && (cx >> 22 & 1) &&
      from_cpuid_leaf(0x8000001Du, c) && c->l1d && c->l2) {
    c->source = "cpuid 0x8000001D";
    return true;
  }
  // AMD's older leaves (and what hypervisors that hide topology extensions still answer): L1d in KiB in
  // 0x80000005 ECX[31:24], L2 in KiB in 0x80000006 ECX[31:16], L3 in 512 KiB units in EDX[31:18]. No sharing count.
  if (max_ext >= 0x80000006u) {
    __get_cpuid(0x80000005u, &a, &b, &cx, &d);
    const int64_t l1d = int64_t(cx >> 24) * 1024;
    __get_cpuid(0x80000006u, &a, &b, &cx, &d);
    const int64_t l2 = int64_t(cx >> 16) * 1024;
    const int64_t l3 = int64_t(d >> 18) * 512 * 1024;
    if (l1d && l2) {
      *c = CacheSizes{l1d, l2, l3, 0, 0, "cpuid 0x80000005/6"};
      return true;
    }
  }
  return false;
}
#endif

/** the first line of a small sysfs file; false when it cannot be read */
bool read_line(const char* path, char* buf, size_t n) {
  FILE* f = std::fopen(path, "r");
  if (!f) return false;
  const bool ok = std::fgets(buf, static_cast<int>(n), f) != nullptr;
  std::fclose(f);
  return ok;
}

/** how many CPUs a sysfs cpu list ("0-3,8-11", "5") names */
int64_t count_cpu_list(const char* s) {
  int64_t n = 0;
  while (*s && *s != '\n') {
    char* e = nullptr;
    const long lo = std::strtol(s, &e, 10);
    if (e == s) break;
    long hi = lo;
    s = e;
    if (*s == '-') {
      hi = std::strtol(s + 1, &e, 10);
      s = e;
    }
    n += hi >= lo ? hi - lo + 1 : 1;
    if (*s == ',') s++;
  }
  return n;
}

/** Linux's view (cpu0; on hybrid CPUs that is usually a performance core). Shared L2s are divided per core. */
bool from_sysfs(CacheSizes* c) {
  bool any = false;
  CacheSizes r{0, 0, 0, 0, 0, "sysfs"};
  for (int i = 0; i < 16; i++) {
    char path[128], buf[256];
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    if (!read_line(path, buf, sizeof buf)) break;
    const int level = std::atoi(buf);
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    if (!read_line(path, buf, sizeof buf) || std::strncmp(buf, "Instruction", 11) == 0) continue;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    if (!read_line(path, buf, sizeof buf)) continue;
    const int64_t size = parse_size(buf, nullptr);
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_list", i);
    const int64_t sharing = read_line(path, buf, sizeof buf) ? count_cpu_list(buf) : 0;
    if (level == 1) r.l1d = size;
    if (level == 2) r.l2 = sharing > 1 ? size / sharing : size;
    if (level == 3) r.l3 = size, r.l3_sharing = sharing;
    any = true;
  }
  if (!any || !r.l1d || !r.l2) return false;
  *c = r;
  return true;
}

#if defined(__APPLE__)
int64_t sysctl_int(const char* name) {
  int64_t v = 0;
  size_t n = sizeof v;
  if (sysctlbyname(name, &v, &n, nullptr, 0) != 0) return 0;
  return n == sizeof(int32_t) ? int64_t(*reinterpret_cast<int32_t*>(&v)) : v;
}

/** Apple silicon: the performance cores' caches; their L2 is shared by a cluster, so one core's part of it */
bool from_sysctl(CacheSizes* c) {
  int64_t l1d = sysctl_int("hw.perflevel0.l1dcachesize"), l2 = sysctl_int("hw.perflevel0.l2cachesize");
  const int64_t per_l2 = sysctl_int("hw.perflevel0.cpusperl2");
  if (!l1d) l1d = sysctl_int("hw.l1dcachesize");
  if (!l2) l2 = sysctl_int("hw.l2cachesize");
  if (!l1d || !l2) return false;
  *c = CacheSizes{l1d, per_l2 > 1 ? l2 / per_l2 : l2, sysctl_int("hw.l3cachesize"), 0, 0, "sysctl"};
  return true;
}
#endif

CacheSizes find() {
  CacheSizes c{0, 0, 0, 0, 0, "none"};
  if (from_env(&c)) return c;
#if defined(__x86_64__) || defined(__i386__)
  {
    CacheSizes x{0, 0, 0, 0, 0, "none"};
    if (from_cpuid(&x)) return x;
  }
#endif
  if (from_sysfs(&c)) return c;
#if defined(__APPLE__)
  if (from_sysctl(&c)) return c;
#endif
  return CacheSizes{0, 0, 0, 0, 0, "none"};
}

CacheSizes detect() {
  CacheSizes c = find();
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  c.cpus = online > 0 ? online : 1;
  return c;
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect();
  return sizes;
}

}  // namespace orpo
