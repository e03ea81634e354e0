// Single-thread throughput of the 8-bit-activation matmuls (KernelTable::qmatmul) and of the
// BF16/F16 float matmuls (KernelTable::matmul, "matmul/..."), reference vs each SIMD table this CPU
// runs (avx2, avx512, avx512+amx), per weight layout (*_R8 = Q8_0 / Q4_K / Q5_K / Q6_K interleaved
// 8 rows at load, BF16_R16 / F16_R16 16 rows, what models run): expert mat-vec (n_tok = 1) and
// small GEMMs (quantized: n_tok 2-32; float: 2-16, and 64, a prefill chunk's tokens per expert) on
// expert-sized weights (gate/up: 1024 rows x 2048 inputs, down: 2048 rows x 1024 inputs).
//
//   moxie_kernels_bench [--benchmark_filter=...] [--benchmark_format=json] ...
//
// bytes_per_second counts weight bytes (the traffic a decode step streams); FLOP/s counts
// 2·n_in·n_rows·n_tok. "stream" cycles through enough weight copies (1 GiB, on transparent huge
// pages as the loader's weights are) that every call reads its weights from DRAM, as a decode step
// reads experts (a Xeon VM reporting a 480 MiB last-level cache held a 64 MiB cycle and read it at
// 24 GB/s per core against 14.5 from DRAM); "hot" reuses one copy, which then sits in the cache.
// The activation quantization (done once per Linear) is timed separately (quantize_act).
// ".../stream/ISA/2threads" (Q8_0_R8, Q4_K_R8, BF16_R16, 1-8 tokens) runs the kernel on two threads
// at once, each streaming its own weights: the rate a decode step's expert phase can reach on two
// cores, to set beside the bandwidth probe (moxie_membw 2). "attn/..." times one head's cached
// attention (KernelTable::attn_scores + attn_values, head size 128) for m queries over a context of
// n positions of an f32 or f16 KV cache; bytes_per_second counts the K and V bytes, "stream" reads
// them from DRAM as a long-context decode step does. "attend_decode/..." times AttendCached (the
// tiling and the cache's runs included) for one decoded token on a model-shaped KV cache, each call
// on the next layer, on 1 and 2 threads.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/bf16_r16.h"
#include "kernels/ref/quant.h"
#include "models/blocks/attention.h"
#include "models/kv_cache.h"

namespace moxie {
namespace {

struct WeightShape {
  const char* name;
  size_t n_rows, n_in;
};
constexpr WeightShape kShapes[] = {{"gate_up_1024x2048", 1024, 2048},
                                   {"down_2048x1024", 2048, 1024},
                                   {"gate_up_768x2048", 768, 2048},  // Qwen3-30B-A3B's experts
                                   {"down_2048x768", 2048, 768}};
constexpr size_t kStreamBytes = size_t{1024} << 20;

// Weight and KV buffers on 2 MiB boundaries, offered to transparent huge pages, as the loader lays
// the weights out (OwnedWeights): on 4 KiB pages every page of a stream costs a TLB walk and stops
// the hardware prefetchers, which a model's decode never sees.
template <typename T>
struct HugeAlloc {
  using value_type = T;
  HugeAlloc() = default;
  template <typename U>
  HugeAlloc(const HugeAlloc<U>&) {}  // NOLINT: allocator conversion
  T* allocate(size_t n) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = std::max(kHuge, (n * sizeof(T) + kHuge - 1) / kHuge * kHuge);
    void* p = std::aligned_alloc(kHuge, bytes);
    if (p == nullptr) throw std::bad_alloc();
    ::madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const HugeAlloc&) const { return true; }
};
template <typename T>
using HugeVec = std::vector<T, HugeAlloc<T>>;

// Quantized (or BF16) random weights, `copies` times (each copy a distinct allocation-sized slice).
HugeVec<uint8_t> MakeWeights(DType dt, const WeightShape& s, size_t copies) {
  if (dt == DType::kBF16 || dt == DType::kBF16R16 || dt == DType::kF16R16) {
    const size_t bytes = 2 * s.n_in * s.n_rows;
    HugeVec<uint8_t> w(bytes * copies);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (size_t i = 0; i < s.n_in * s.n_rows; ++i) {
      const float f = 0.02f * nd(rng);
      const uint16_t h = dt == DType::kF16R16 ? F32ToF16(f) : F32ToBf16(f);
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
    if (RowInterleave(dt) == 16) {  // the load-time layouts (16 rows interleaved)
      std::vector<uint8_t> plain(w.begin(), w.begin() + bytes);
      (dt == DType::kF16R16 ? RepackF16ToR16 : RepackBf16ToR16)(
          plain.data(), static_cast<int64_t>(s.n_rows), static_cast<int64_t>(s.n_in), w.data());
    }
    for (size_t c = 1; c < copies; ++c)
      std::copy(w.begin(), w.begin() + bytes, w.begin() + c * bytes);
    return w;
  }
  const QuantType q = WeightQuantType(dt);
  const size_t row_bytes = QuantRowBytes(q, static_cast<int64_t>(s.n_in));
  const size_t bytes = row_bytes * s.n_rows;
  HugeVec<uint8_t> w(bytes * copies);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> row(s.n_in);
  for (size_t r = 0; r < s.n_rows; ++r) {
    for (auto& v : row) v = nd(rng);
    (void)QuantizeRow(q, row.data(), w.data() + r * row_bytes, static_cast<int64_t>(s.n_in));
  }
  if (RowInterleave(dt) == 8) {  // the load-time layouts (8 rows interleaved)
    std::vector<uint8_t> plain(w.begin(), w.begin() + bytes);
    (dt == DType::kQ8_0R8    ? RepackQ8_0ToR8
     : dt == DType::kQ4_0R8  ? RepackQ4_0ToR8
     : dt == DType::kMXFP4R8 ? RepackMxfp4ToR8
     : dt == DType::kQ4_KR8  ? RepackQ4_KToR8
     : dt == DType::kQ5_KR8  ? RepackQ5_KToR8
                             : RepackQ6_KToR8)(plain.data(), static_cast<int64_t>(s.n_rows),
                                              static_cast<int64_t>(s.n_in), w.data());
  }
  for (size_t c = 1; c < copies; ++c)
    std::copy(w.begin(), w.begin() + bytes, w.begin() + c * bytes);
  return w;
}

// The timed loop of a matmul bench: call(c) runs on weight copy c (cycling through `copies`);
// bytes/s counts weight bytes, FLOP/s 2·n_in·n_rows·n_tok per call.
template <typename Call>
void TimeCalls(benchmark::State& state, const WeightShape& s, size_t n_tok, size_t bytes,
               size_t copies, const float* y, Call call) {
  size_t c = 0;
  for (auto _ : state) {
    call(c);
    benchmark::DoNotOptimize(y);
    benchmark::ClobberMemory();
    if (++c == copies) c = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(s.n_in * s.n_rows * n_tok) *
                             static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void BM_QMatmul(benchmark::State& state, const KernelTable* kt, DType dt, WeightShape s,
                size_t n_tok, bool stream) {
  const size_t bytes = RowBytes(dt, static_cast<int64_t>(s.n_in)) * s.n_rows;
  const size_t copies = stream ? (kStreamBytes + bytes - 1) / bytes : 1;
  const HugeVec<uint8_t> w = MakeWeights(dt, s, copies);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  std::vector<float> x(n_tok * s.n_in);
  for (auto& v : x) v = nd(rng);
  const size_t stride = ActRowBytes(dt, s.n_in);
  std::vector<uint8_t> xq(n_tok * stride);
  for (size_t t = 0; t < n_tok; ++t) {
    kt->QuantizeAct(dt)(x.data() + t * s.n_in, xq.data() + t * stride, s.n_in);
  }
  std::vector<float> y(n_tok * s.n_rows);
  const QMatmulFn mm = kt->QMatmul(dt);
  TimeCalls(state, s, n_tok, bytes, copies, y.data(), [&](size_t c) {
    mm(xq.data(), stride, n_tok, w.data() + c * bytes, s.n_in, s.n_rows, y.data(), s.n_rows);
  });
}

// Float-weight matmuls (f32 activations): BF16 / F16 weights as a BF16 model's experts run.
void BM_FloatMatmul(benchmark::State& state, const KernelTable* kt, DType dt, WeightShape s,
                    size_t n_tok, bool stream) {
  const size_t bytes = DTypeSize(dt) * s.n_in * s.n_rows;
  const size_t copies = stream ? (kStreamBytes + bytes - 1) / bytes : 1;
  const bool plain = dt == DType::kF16 || dt == DType::kF32;
  HugeVec<uint8_t> w = plain ? HugeVec<uint8_t>(bytes * copies) : MakeWeights(dt, s, copies);
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  if (plain) {
    for (size_t i = 0; i < s.n_in * s.n_rows; ++i) {
      const float f = 0.02f * nd(rng);
      if (dt == DType::kF32) {
        std::memcpy(w.data() + 4 * i, &f, 4);
      } else {
        const uint16_t h = F32ToF16(f);
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    }
    for (size_t c = 1; c < copies; ++c)
      std::copy(w.begin(), w.begin() + bytes, w.begin() + c * bytes);
  }
  std::vector<float> x(n_tok * s.n_in), y(n_tok * s.n_rows);
  for (auto& v : x) v = nd(rng);
  const MatmulFn mm = kt->Matmul(dt);
  TimeCalls(state, s, n_tok, bytes, copies, y.data(), [&](size_t c) {
    mm(x.data(), s.n_in, n_tok, w.data() + c * bytes, s.n_in, s.n_rows, y.data(), s.n_rows);
  });
}

template <typename E>
void BM_Attention(benchmark::State& state, const KernelTable* kt, size_t n, size_t m, bool stream) {
  constexpr size_t d = 128;
  const size_t bytes = 2 * n * d * sizeof(E);  // K and V rows of one head
  const size_t copies = stream ? (kStreamBytes + bytes - 1) / bytes : 1;
  HugeVec<E> kv(copies * 2 * n * d);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (size_t i = 0; i < 2 * n * d; ++i) {
    const float f = nd(rng);
    if constexpr (sizeof(E) == 2) {
      kv[i] = F32ToF16(f);
    } else {
      kv[i] = f;
    }
  }
  for (size_t c = 1; c < copies; ++c)
    std::copy(kv.begin(), kv.begin() + 2 * n * d, kv.begin() + c * 2 * n * d);
  std::vector<float> q(m * d), s(m * n), o(m * d);
  for (auto& v : q) v = nd(rng);
  size_t c = 0;
  for (auto _ : state) {
    const E* k = kv.data() + c * 2 * n * d;
    const E* v = k + n * d;
    if constexpr (sizeof(E) == 2) {
      kt->attn_scores_f16(q.data(), d, m, k, d, n, d, 0.088f, s.data(), n);
      kt->attn_values_f16(s.data(), n, m, v, d, n, d, o.data(), d);
    } else {
      kt->attn_scores(q.data(), d, m, k, d, n, d, 0.088f, s.data(), n);
      kt->attn_values(s.data(), n, m, v, d, n, d, o.data(), d);
    }
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
    if (++c == copies) c = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

// A model's decode-step attention (AttendCached: the tiling, the runs of the cache's blocks and
// the kernels) for one token after n positions, on a KV cache laid out as the model's: n_layer
// layers of n_kv heads x 128, n_head query heads; each call attends one layer, cycling through
// them, so the K/V rows come from DRAM as in a long-context decode. Threads: the pool's.
struct AttnShape {
  const char* name;
  int n_layer, n_head, n_kv;
};
constexpr AttnShape kAttnShapes[] = {{"qwen3_30b_a3b", 48, 32, 4}, {"olmoe_1b_7b", 16, 16, 16}};

void BM_AttendDecode(benchmark::State& state, const KernelTable* kt, AttnShape sh, int n, DType type,
                     int n_threads) {
  constexpr int d = 128;
  std::vector<KvLayerSpec> specs(static_cast<size_t>(sh.n_layer), KvLayerSpec{sh.n_kv, d, d});
  KvCache kv(specs, 1, n + 1, type);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::vector<float> row(d);
  for (int l = 0; l < sh.n_layer; ++l) {
    const KvLayer L = kv.layer(l);
    for (int h = 0; h < sh.n_kv; ++h) {
      for (int j = 0; j <= n; ++j) {
        for (auto& x : row) x = nd(rng);
        L.Store(L.K(0, h, j), 0, row.data(), d);
        for (auto& x : row) x = nd(rng);
        L.Store(L.V(0, h, j), 0, row.data(), d);
      }
    }
  }
  ThreadPool pool(n_threads);
  ExecContext ctx;
  ctx.pool = &pool;
  ctx.kernels = kt;
  Arena arena;
  arena.Reserve(AttendScratchFloats(kv.max_ctx(), n_threads));
  const size_t qw = static_cast<size_t>(sh.n_head) * d;
  std::vector<float> q(qw), out(qw);
  for (auto& x : q) x = nd(rng);
  const int32_t tok = 0, pos = n, seq = 0;
  const Batch batch{1, &tok, &pos, &seq};
  const AttendParams p{sh.n_head, sh.n_kv, d, d, 0.088f};
  int l = 0;
  for (auto _ : state) {
    arena.Reset();
    AttendCached(ctx, q.data(), qw, batch, kv.layer(l), p, out.data(), qw, arena);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    if (++l == sh.n_layer) l = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * (n + 1) * sh.n_kv * 2 * d *
                          static_cast<int64_t>(DTypeSize(type)));
}

void BM_QuantizeAct(benchmark::State& state, const KernelTable* kt, DType dt, size_t n_in) {
  const QuantType q = WeightQuantType(dt);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(n_in);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> xq(ActivationRowBytes(q, static_cast<int64_t>(n_in)));
  for (auto _ : state) {
    kt->QuantizeAct(dt)(x.data(), xq.data(), n_in);
    benchmark::DoNotOptimize(xq.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n_in * 4));
}

void RegisterAll() {
  std::vector<const KernelTable*> tables = {&RefKernels()};
  for (const KernelTable* t : SimdKernels()) tables.push_back(t);
  for (DType dt : {DType::kQ8_0, DType::kQ8_0R8, DType::kQ4_K, DType::kQ4_KR8, DType::kQ5_K,
                   DType::kQ5_KR8, DType::kQ6_K, DType::kQ6_KR8, DType::kQ4_0, DType::kQ4_0R8,
                   DType::kMXFP4, DType::kMXFP4R8, DType::kBF16, DType::kBF16R16}) {
    for (const WeightShape& s : kShapes) {
      for (size_t n_tok : {1, 2, 3, 4, 6, 8, 12, 32}) {
        for (bool stream : {true, false}) {
          for (const KernelTable* kt : tables) {
            if (kt->QMatmul(dt) == nullptr) continue;  // BF16: bf16 activations need AVX512_BF16
            const std::string name = std::string("qmatmul/") + DTypeName(dt) + "/" + s.name +
                                     "/tok" + std::to_string(n_tok) +
                                     (stream ? "/stream/" : "/hot/") + kt->isa;
            benchmark::RegisterBenchmark(name.c_str(), BM_QMatmul, kt, dt, s, n_tok, stream)
                ->Unit(benchmark::kMicrosecond);
            if (stream && n_tok <= 8 &&
                (dt == DType::kQ8_0R8 || dt == DType::kQ4_0R8 || dt == DType::kQ4_KR8 ||
                 dt == DType::kBF16R16)) {
              // Both cores streaming at once, as a decode step runs them (bytes/s: both threads').
              benchmark::RegisterBenchmark((name + "/2threads").c_str(), BM_QMatmul, kt, dt, s,
                                           n_tok, stream)
                  ->Unit(benchmark::kMicrosecond)
                  ->Threads(2)
                  ->UseRealTime();
            }
          }
        }
      }
    }
    for (const KernelTable* kt : tables) {
      const std::string name = std::string("quantize_act/") + DTypeName(dt) + "/n2048/" + kt->isa;
      benchmark::RegisterBenchmark(name.c_str(), BM_QuantizeAct, kt, dt, size_t{2048});
    }
  }
  for (size_t n : {512, 4096}) {
    for (size_t m : {1, 4, 8}) {
      for (bool stream : {true, false}) {
        for (const KernelTable* kt : tables) {
          for (const char* e : {"F32", "F16"}) {
            const std::string name = std::string("attn/") + e + "/ctx" + std::to_string(n) + "/q" +
                                     std::to_string(m) + (stream ? "/stream/" : "/hot/") + kt->isa;
            if (e[1] == '3') {
              benchmark::RegisterBenchmark(name.c_str(), BM_Attention<float>, kt, n, m, stream)
                  ->Unit(benchmark::kMicrosecond);
            } else {
              benchmark::RegisterBenchmark(name.c_str(), BM_Attention<uint16_t>, kt, n, m, stream)
                  ->Unit(benchmark::kMicrosecond);
            }
          }
        }
      }
    }
  }
  for (const AttnShape& sh : kAttnShapes) {
    for (int n : {512, 2048}) {
      for (DType type : {DType::kF32, DType::kF16}) {
        for (int threads : {1, 2}) {
          for (const KernelTable* kt : tables) {
            const std::string name = std::string("attend_decode/") + sh.name + "/" + DTypeName(type) + "/ctx" +
                                     std::to_string(n) + "/" + kt->isa + "/" + std::to_string(threads) + "threads";
            benchmark::RegisterBenchmark(name.c_str(), BM_AttendDecode, kt, sh, n, type, threads)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
        }
      }
    }
  }
  // F32: a router (64 experts x 2048), whole and one thread's tapered chunk of it.
  constexpr WeightShape kRouterShapes[] = {{"router_64x2048", 64, 2048},
                                           {"router_rows14x2048", 14, 2048}};
  for (const WeightShape& s : kRouterShapes) {
    for (size_t n_tok : {1, 8}) {
      for (const KernelTable* kt : tables) {
        const std::string name = std::string("matmul/F32/") + s.name + "/tok" +
                                 std::to_string(n_tok) + "/stream/" + kt->isa;
        benchmark::RegisterBenchmark(name.c_str(), BM_FloatMatmul, kt, DType::kF32, s, n_tok, true)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  for (DType dt : {DType::kBF16, DType::kBF16R16, DType::kF16, DType::kF16R16}) {
    for (const WeightShape& s : kShapes) {
      for (size_t n_tok : {1, 2, 4, 8, 16, 64}) {
        for (bool stream : {true, false}) {
          for (const KernelTable* kt : tables) {
            if (kt->Matmul(dt) == nullptr) continue;
            const std::string name = std::string("matmul/") + DTypeName(dt) + "/" + s.name +
                                     "/tok" + std::to_string(n_tok) +
                                     (stream ? "/stream/" : "/hot/") + kt->isa;
            benchmark::RegisterBenchmark(name.c_str(), BM_FloatMatmul, kt, dt, s, n_tok, stream)
                ->Unit(benchmark::kMicrosecond);
            if (stream && n_tok <= 8 && RowInterleave(dt) == 16) {
              benchmark::RegisterBenchmark((name + "/2threads").c_str(), BM_FloatMatmul, kt, dt, s,
                                           n_tok, stream)
                  ->Unit(benchmark::kMicrosecond)
                  ->Threads(2)
                  ->UseRealTime();
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moxie

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  moxie::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
