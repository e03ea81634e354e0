#include "kernels/kernel_table.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moxie {

#if defined(MOXIE_HAVE_AVX2)
const KernelTable* Avx2KernelsImpl();
#endif

const KernelTable* Avx2Kernels() {
#if defined(MOXIE_HAVE_AVX2)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return Avx2KernelsImpl();
  }
#endif
  return nullptr;
}

const KernelTable& BestKernels() {
  static const KernelTable* chosen = [] {
    const char* force = std::getenv("MOXIE_ISA");
    if (force != nullptr && std::strcmp(force, "ref") == 0) return &RefKernels();
    const KernelTable* avx2 = Avx2Kernels();
    if (force != nullptr && std::strcmp(force, "avx2") == 0 && avx2 == nullptr) {
      std::fprintf(stderr, "moxie: MOXIE_ISA=avx2 requested but unavailable; using ref\n");
    }
    return avx2 != nullptr ? avx2 : &RefKernels();
  }();
  return *chosen;
}

}  // namespace moxie
