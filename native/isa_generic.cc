// The kernel table for generic; the instruction set comes from this file's compiler flags in binding.gyp.
#define ORPO_ISA isa_generic
#if defined(__aarch64__)
#define ORPO_ISA_NAME "neon"
#else
#define ORPO_ISA_NAME "generic"
#endif
#define ORPO_TABLE kernels_generic
#include "kernels_impl.h"
