// "Nothing allocates in the decode loop": counts heap allocations during decode steps.
#include <atomic>
#include <cstdlib>
#include <new>

#include "runtime/session.h"
#include "tests/test_util.h"

namespace {
std::atomic<long> g_allocs{0};
}  // namespace

// Counting replacements of the global allocation functions (this test binary only).
void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace moxie {
namespace {

class NoAllocTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NoAllocTest, DecodeStepsDoNotAllocate) {
  const long at_start = g_allocs.load();
  auto m = LoadModel(testing::ModelDir(GetParam()));
  ASSERT_TRUE(m.ok());
  ASSERT_GT(g_allocs.load(), at_start) << "the allocation counter does not count";
  for (DType kv_type : {DType::kF32, DType::kF16}) {
    SessionOptions so;
    so.n_threads = 2;
    so.max_ctx = 64;
    so.kv_type = kv_type;
    auto s = Session::Create(**m, so);
    ASSERT_TRUE(s.ok());
    std::vector<float> logits(static_cast<size_t>((*m)->info().n_vocab) * 16);
    const int32_t prompt[] = {84, 294, 32, 113, 117, 354, 107, 497};
    ASSERT_TRUE((*s)->Feed(0, prompt, 8, false, logits.data()).ok());
    const long before = g_allocs.load();
    int32_t tok = 5;
    Status st;
    for (int i = 0; i < 16 && st.ok(); ++i) {
      st = (*s)->Feed(0, &tok, 1, false, logits.data());
      tok = (tok * 31 + 7) % 511;
    }
    const long after = g_allocs.load();
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(after - before, 0) << "heap allocations during 16 decode steps, KV cache " << DTypeName(kv_type);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, NoAllocTest,
                         ::testing::Values("mixtral", "qwen2moe", "olmoe", "deepseek-v3"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace moxie
