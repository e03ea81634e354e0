// Shared helpers for Moxie's tests.
#pragma once

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// Status or Result: asserts success and prints the error message otherwise.
#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const auto& moxie_st_ = (expr);                           \
    ASSERT_TRUE(::moxie::testing::StatusOf(moxie_st_).ok())   \
        << ::moxie::testing::StatusOf(moxie_st_).message();   \
  } while (0)

namespace moxie::testing {

template <typename S>
auto StatusOf(const S& s) {
  if constexpr (requires { s.status(); }) {
    return s.status();
  } else {
    return s;
  }
}


inline std::string DataDir() { return MOXIE_TEST_DATA; }
inline std::string ModelDir(const std::string& name) { return DataDir() + "/models/" + name; }

// A fresh empty directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/moxie_test_XXXXXX";
    const char* p = mkdtemp(tmpl);
    path_ = p ? p : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Max |a - b|; reports the worst element's index, values and the tolerance on failure.
inline ::testing::AssertionResult AllClose(const float* a, const float* b, size_t n, float tol,
                                           size_t row_len, float* max_diff_out = nullptr) {
  float worst = 0.f;
  size_t wi = 0;
  for (size_t i = 0; i < n; ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (!(d <= worst)) {  // also catches NaN
      worst = d;
      wi = i;
      if (std::isnan(d)) break;
    }
  }
  if (max_diff_out) *max_diff_out = worst;
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max |diff| " << worst << " > tol " << tol << " at row " << wi / row_len << " col "
         << wi % row_len << ": got " << a[wi] << ", want " << b[wi];
}

}  // namespace moxie::testing
