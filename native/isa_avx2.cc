// The kernel table for avx2; the instruction set comes from this file's compiler flags in binding.gyp.
#define ORPO_ISA isa_avx2
#define ORPO_ISA_NAME "avx2"
#define ORPO_TABLE kernels_avx2
#include "kernels_impl.h"
