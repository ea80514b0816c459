// What the C++ kernel harnesses (parity.cc, amx.cc) share: the seeded generator the TypeScript tests use, the
// bfloat16 rounding of the reference (written here, apart from the kernels it checks), and JSON string quoting for
// the lines the node tests read.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace harness {

/** mulberry32, as the TypeScript tests use: small, seeded, the same sequence on every platform */
class Rng {
 public:
  explicit Rng(uint32_t seed) : state_(seed) {}
  double uniform() {
    state_ += 0x6d2b79f5u;
    uint32_t t = state_;
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + (t ^ (t >> 7)) * (t | 61u);
    return double(t ^ (t >> 14)) / 4294967296.0;
  }
  std::vector<float> floats(int64_t n, double scale = 1.0) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = float((uniform() * 2.0 - 1.0) * scale);
    return v;
  }
  std::vector<int32_t> ints(int64_t n, int32_t lo, int32_t hi) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = lo + static_cast<int32_t>(uniform() * double(hi - lo));
    return v;
  }

 private:
  uint32_t state_;
};

/** x rounded to the nearest bfloat16, ties to even (PyTorch's .to(torch.bfloat16)); finite inputs only */
inline float bf16_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

/** s as a JSON string (the harnesses' labels hold no control characters) */
inline std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r + "\"";
}

}  // namespace harness
