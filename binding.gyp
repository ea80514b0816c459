{
  # The native kernels (native/). The same kernel source (kernels_impl.h) is compiled once per instruction set,
  # each in its own static library so it can carry its own -m flags; addon.cc picks one at load time. Nothing is
  # built with -march=native, so the addon runs on any x86-64 (or arm64) CPU.
  "target_defaults": {
    "cflags_cc": ["-O3", "-std=c++17", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-fPIC",
                  "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function"],
    "cflags_cc!": ["-std=gnu++17", "-O2"],
  },
  "targets": [
    {
      "target_name": "orpo_kernels_generic",
      "type": "static_library",
      "sources": ["native/isa_generic.cc", "native/pool.cc", "native/cpu.cc"],
    },
    {
      "target_name": "orpo_native",
      "sources": ["native/addon.cc"],
      "dependencies": ["orpo_kernels_generic"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["orpo_kernels_avx2", "orpo_kernels_avx512"]}],
      ],
    },
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "orpo_kernels_avx2",
          "type": "static_library",
          "sources": ["native/isa_avx2.cc"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c"],
        },
        {
          "target_name": "orpo_kernels_avx512",
          "type": "static_library",
          # amx.cc: the AMX bf16 GEMM (issue 16). AMX only inside its target attributes (no -mamx flags), so this
          # library still runs on every AVX-512 CPU; the AMX code runs only where amx::usable() says so.
          "sources": ["native/isa_avx512.cc", "native/amx.cc"],
          # -Wno-maybe-uninitialized and -Wno-uninitialized: GCC 12's own avx512fintrin.h trips them (its
          # _mm512_undefined_ps() self-initialises a variable on purpose; GCC bug 105593, fixed in GCC 13): ten to
          # twenty alarming warnings on every install that say nothing about our code (the bf16-rounding instance of
          # pack_a_rows_x16 inlines enough of those intrinsics for the definite form). Only this target, which
          # includes those headers, turns them off.
          "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c", "-mprefer-vector-width=512",
                        "-Wno-maybe-uninitialized", "-Wno-uninitialized"],
        },
      ],
    }],
  ],
}
