#include "kernels/kernel_table.h"

#include "kernels/ref/bf16_act.h"
#include "kernels/ref/quant.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moxie {

#if defined(MOXIE_HAVE_AVX2)
const KernelTable* Avx2KernelsImpl();
#endif
#if defined(MOXIE_HAVE_AVX512)
const KernelTable* Avx512KernelsImpl();
#endif
#if defined(MOXIE_HAVE_AMX)
bool AmxBf16Usable();
const KernelTable* AmxKernelsImpl();
#endif

size_t ActRowBytes(DType w, size_t n_in) {
  if (w == DType::kBF16 || w == DType::kBF16R16) return Bf16ActRowBytes(n_in);
  return ActivationRowBytes(WeightQuantType(w), static_cast<int64_t>(n_in));
}

uint32_t ActFormat(DType w) {
  if (w == DType::kBF16 || w == DType::kBF16R16) return static_cast<uint32_t>(GgmlTypeOf(DType::kBF16));
  return ActivationGgmlType(WeightQuantType(w));
}

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

const KernelTable* Avx512Kernels() {
#if defined(MOXIE_HAVE_AVX512)
  // libgcc's CPU model also checks that the OS saves the 512-bit state (XCR0).
  if (Avx2Kernels() != nullptr && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni")) {
    return Avx512KernelsImpl();
  }
#endif
  return nullptr;
}

const KernelTable* AmxKernels() {
#if defined(MOXIE_HAVE_AMX)
  const KernelTable* avx512 = Avx512Kernels();
  if (avx512 != nullptr && avx512->QMatmul(DType::kBF16) != nullptr && AmxBf16Usable()) return AmxKernelsImpl();
#endif
  return nullptr;
}

std::vector<const KernelTable*> SimdKernels() {
  std::vector<const KernelTable*> v;
  if (const KernelTable* t = Avx2Kernels()) v.push_back(t);
  if (const KernelTable* t = Avx512Kernels()) v.push_back(t);
  if (const KernelTable* t = AmxKernels()) v.push_back(t);
  return v;
}

const KernelTable& BestKernels() {
  static const KernelTable* chosen = [] {
    const char* force = std::getenv("MOXIE_ISA");
    if (force != nullptr && std::strcmp(force, "ref") == 0) return &RefKernels();
    const KernelTable* avx2 = Avx2Kernels();
    const KernelTable* avx512 = Avx512Kernels();
    const KernelTable* amx = AmxKernels();
    if (force != nullptr && std::strcmp(force, "avx2") == 0) {
      if (avx2 != nullptr) return avx2;
      std::fprintf(stderr, "moxie: MOXIE_ISA=avx2 requested but unavailable; using ref\n");
      return &RefKernels();
    }
    if (force != nullptr && std::strcmp(force, "avx512") == 0) {
      if (avx512 != nullptr) return avx512;
      std::fprintf(stderr, "moxie: MOXIE_ISA=avx512 requested but unavailable; using %s\n",
                   avx2 != nullptr ? "avx2" : "ref");
    } else if (force != nullptr && std::strcmp(force, "amx") == 0 && amx == nullptr) {
      std::fprintf(stderr, "moxie: MOXIE_ISA=amx requested but unavailable; using the best\n");
    } else if (force != nullptr && std::strcmp(force, "amx") != 0) {
      std::fprintf(stderr, "moxie: unknown MOXIE_ISA=%s (ref, avx2, avx512, amx); using the best\n", force);
    }
    if (amx != nullptr) return amx;
    if (avx512 != nullptr) return avx512;
    return avx2 != nullptr ? avx2 : &RefKernels();
  }();
  return *chosen;
}

}  // namespace moxie
