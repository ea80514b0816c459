// The kernel table for avx512; the instruction set comes from this file's compiler flags in binding.gyp.
#define ORPO_ISA isa_avx512
#define ORPO_ISA_NAME "avx512"
#define ORPO_TABLE kernels_avx512
#include "kernels_impl.h"
