#include "models/loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ref/bf16_r16.h"
#include "kernels/ref/quant.h"

namespace moxie {

Result<const WeightRef*> TensorLoader::Fetch(const std::string& name,
                                             const std::vector<int64_t>& shape) {
  const Shape want{shape};
  const WeightRef* r = src_.Find(name);
  if (r == nullptr) {
    return NotFound(src_.Describe() + ": missing tensor '" + name + "' (expected shape " +
                    want.ToString() + " from " + config_path_ + ")");
  }
  if (!r->dtype_supported || !(IsFloatWeight(r->view.dtype) || IsQuantized(r->view.dtype))) {
    return Unsupported(r->file + ": tensor '" + name + "' has dtype " + r->dtype_name +
                       "; supported weight dtypes: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, "
                       "MXFP4");
  }
  if (IsQuantized(r->view.dtype) && shape.back() % DTypeBlock(r->view.dtype) != 0) {
    return InvalidFormat(r->file + ": tensor '" + name + "' row length " +
                         std::to_string(shape.back()) + " is not a multiple of the " +
                         r->dtype_name + " block");
  }
  if (r->view.shape != want) {
    return InvalidFormat(r->file + ": tensor '" + name + "' has shape " + r->view.shape.ToString() +
                         " but " + config_path_ + " implies " + want.ToString());
  }
  if (used_.insert(name).second) {
    params_ += r->view.numel();
    bytes_[r->dtype_name] += static_cast<int64_t>(r->view.nbytes());
    count_[r->dtype_name] += 1;
  }
  return r;
}

Result<TensorView> TensorLoader::Weight(const std::string& name,
                                        const std::vector<int64_t>& shape) {
  MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(name, shape));
  return r->view;
}

uint8_t* OwnedWeights::Alloc(size_t n) {
  // Large buffers on 2 MiB boundaries, offered to transparent huge pages: fewer page faults
  // while the loader fills them, fewer TLB misses while the kernels stream them. Small ones (a
  // router, 512 KiB) share such slabs: on 4 KiB pages, each read once per token after the
  // experts have swept the TLB, the page walks cost more than the bytes (model A Q8_0's F32
  // routers, one thread, in decode: ~190 us per layer from 4 KiB pages for 512 KiB).
  constexpr size_t kHuge = size_t{2} << 20;
  auto huge = [&](size_t bytes) -> uint8_t* {
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHuge, bytes));
    if (p == nullptr) return nullptr;
    ::madvise(p, bytes, MADV_HUGEPAGE);
    bufs_.emplace_back(p);
    return p;
  };
  const size_t rounded = std::max<size_t>(64, (n + 63) / 64 * 64);
  if (rounded >= kHuge) return huge((n + kHuge - 1) / kHuge * kHuge);
  if (slab_ == nullptr || kHuge - slab_used_ < rounded) {
    slab_ = huge(kHuge);
    slab_used_ = 0;
    if (slab_ == nullptr) return nullptr;
  }
  uint8_t* p = slab_ + slab_used_;
  slab_used_ += rounded;
  return p;
}

void OwnedWeights::Free::operator()(uint8_t* p) const { std::free(p); }

namespace {

// MemAvailable from /proc/meminfo in bytes (-1 if unknown).
int64_t MemAvailableBytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long v = 0;
    if (std::sscanf(line, "MemAvailable: %lld kB", &v) == 1) {
      kib = v;
      break;
    }
  }
  std::fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}

}  // namespace

Result<TensorView> TensorLoader::Matmul(const std::string& name, const std::vector<int64_t>& shape,
                                        int64_t row_unit, bool keep_layout) {
  if (auto it = relaid_.find(name); it != relaid_.end()) return it->second;
  MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(name, shape));
  const TensorView& v = r->view;
  if (row_unit == 0) row_unit = shape.size() >= 2 ? shape[shape.size() - 2] : 0;
  // The load-time layouts: Q8_0, Q4_0, MXFP4, Q4_K, Q5_K, Q6_K -> *_R8 (8 rows interleaved), BF16 -> BF16_R16
  // and F16 -> F16_R16 (16 rows interleaved, n_in even).
  // Other weights of a source that can drop its copy (GGUF, HF) are copied as they are: the copy sits
  // on transparent huge pages, so streaming a weight crosses no 4 KiB page boundary (which stops
  // the hardware prefetchers and costs a TLB walk) and takes no page fault after the load.
  DType to = v.dtype;
  void (*repack)(const void*, int64_t, int64_t, void*) = nullptr;  // nullptr: copy the bytes
  if (keep_layout) {
    // copied as stored
  } else if (v.dtype == DType::kQ8_0) {
    to = DType::kQ8_0R8;
    repack = RepackQ8_0ToR8;
  } else if (v.dtype == DType::kQ4_0) {
    to = DType::kQ4_0R8;
    repack = RepackQ4_0ToR8;
  } else if (v.dtype == DType::kMXFP4) {
    to = DType::kMXFP4R8;
    repack = RepackMxfp4ToR8;
  } else if (v.dtype == DType::kQ4_K) {
    to = DType::kQ4_KR8;
    repack = RepackQ4_KToR8;
  } else if (v.dtype == DType::kQ5_K) {
    to = DType::kQ5_KR8;
    repack = RepackQ5_KToR8;
  } else if (v.dtype == DType::kQ6_K) {
    to = DType::kQ6_KR8;
    repack = RepackQ6_KToR8;
  } else if (v.dtype == DType::kBF16 && !shape.empty() && shape.back() % 2 == 0) {
    to = DType::kBF16R16;
    repack = RepackBf16ToR16;
  } else if (v.dtype == DType::kF16 && !shape.empty() && shape.back() % 2 == 0) {
    to = DType::kF16R16;
    repack = RepackF16ToR16;
  }
  const KernelTable& kt = BestKernels();
  // BF16_R16 only where the table has a kernel for it on each activation path it runs BF16 with
  // (f32, and bf16 where QMatmul(BF16) exists); F16_R16 where it has the f32 one (F16 has no other).
  const bool fast = std::strcmp(kt.isa, "ref") != 0 &&
                    (to == DType::kBF16R16 ? kt.Matmul(to) != nullptr &&
                                                 (kt.QMatmul(DType::kBF16) == nullptr || kt.QMatmul(to) != nullptr)
                     : to == DType::kF16R16 ? kt.Matmul(to) != nullptr
                     : repack != nullptr    ? kt.QMatmul(to) != nullptr
                                            : kt.Matmul(to) != nullptr);
  const int64_t unit = RowInterleave(to);
  if (!opts_.repack || owned_ == nullptr || !fast || v.data == nullptr || shape.size() < 2 ||
      (repack != nullptr && (row_unit <= 0 || row_unit % unit != 0)) ||
      (repack == nullptr && (!src_.CanRelease() || RowInterleave(v.dtype) != 1))) {
    return v;
  }
  // The copy lives in anonymous memory, which (unlike the mapping) cannot be paged back to the
  // file: re-lay a tensor out only while it leaves a margin of RAM (1 GiB or 10 %), so a model
  // near or above the machine's memory still loads (the rest stays in the file's layout).
  const int64_t avail = MemAvailableBytes();
  if (avail >= 0) {
    const auto pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    const int64_t total = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
    const int64_t margin = std::max<int64_t>(int64_t{1} << 30, total / 10);
    if (avail - static_cast<int64_t>(v.nbytes()) < margin) return v;
  }
  const int64_t n_in = shape.back();
  const int64_t n_rows = v.numel() / n_in;
  uint8_t* dst = owned_->Alloc(v.nbytes());
  if (dst == nullptr) return v;
  // Whole groups per thread (large tensors only: thread start-up costs ~50 us).
  const int64_t groups = n_rows / unit, row_bytes = static_cast<int64_t>(RowBytes(v.dtype, n_in));
  const int nt = v.nbytes() >= (size_t{8} << 20)
                     ? static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 16))
                     : 1;
  auto part = [&](int i) {
    if (repack == nullptr) {
      const size_t n = v.nbytes(), b0 = n * static_cast<size_t>(i) / nt, b1 = n * static_cast<size_t>(i + 1) / nt;
      std::memcpy(dst + b0, static_cast<const uint8_t*>(v.data) + b0, b1 - b0);
      return;
    }
    const int64_t g0 = groups * i / nt, g1 = groups * (i + 1) / nt;
    if (g1 > g0) {
      repack(static_cast<const uint8_t*>(v.data) + g0 * unit * row_bytes, (g1 - g0) * unit, n_in,
             dst + g0 * unit * row_bytes);
    }
  };
  std::vector<std::thread> th;
  int started = 1;
  try {
    for (; started < nt; ++started) th.emplace_back(part, started);
  } catch (const std::system_error&) {  // no more threads: the caller does the rest
  }
  for (int i = started; i < nt; ++i) part(i);
  part(0);
  for (auto& t : th) t.join();
  src_.Release(*r);
  TensorView out{dst, to, v.shape};
  relaid_[name] = out;
  return out;
}

Result<std::vector<float>> TensorLoader::F32(const std::string& name,
                                             const std::vector<int64_t>& shape) {
  MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(name, shape));
  std::vector<float> v(static_cast<size_t>(r->view.numel()));
  const int64_t row = r->view.shape.dims.empty() ? 1 : r->view.shape.dims.back();
  for (int64_t i = 0; i * row < r->view.numel(); ++i) {
    RowToF32(r->view.dtype, r->view.row(i), v.data() + i * row, row);
  }
  return v;
}

Result<std::vector<ExpertWeights>> TensorLoader::Experts(const std::string& prefix, int n_expert,
                                                         int64_t n_ff, int64_t n_embd,
                                                         const ExpertNames& names) {
  std::vector<ExpertWeights> out(static_cast<size_t>(n_expert));
  // Stacked (GGUF ffn_*_exps): "<prefix>.gate_proj" [E, I, H], ".up_proj" [E, I, H], ".down_proj"
  // [E, H, I]; each expert is a slice of its own.
  if (Has(prefix + ".gate_proj") && !Has(prefix + ".0." + names.gate + ".weight")) {
    MOXIE_ASSIGN_OR_RETURN(TensorView g, Matmul(prefix + ".gate_proj", {n_expert, n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(TensorView u, Matmul(prefix + ".up_proj", {n_expert, n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(TensorView d, Matmul(prefix + ".down_proj", {n_expert, n_embd, n_ff}));
    for (int e = 0; e < n_expert; ++e) {
      out[static_cast<size_t>(e)] = ExpertWeights{g.Slice0(e), u.Slice0(e), d.Slice0(e)};
    }
    return out;
  }
  const std::string fused_gu = prefix + ".gate_up_proj";
  if (!Has(prefix + ".0." + names.gate + ".weight") && Has(fused_gu)) {
    MOXIE_ASSIGN_OR_RETURN(TensorView gu, Matmul(fused_gu, {n_expert, 2 * n_ff, n_embd}, n_ff));
    MOXIE_ASSIGN_OR_RETURN(TensorView dn, Matmul(prefix + ".down_proj", {n_expert, n_embd, n_ff}));
    for (int e = 0; e < n_expert; ++e) {
      TensorView ge = gu.Slice0(e);  // [2I, H]: gate rows first, then up rows
      auto& w = out[static_cast<size_t>(e)];
      w.gate = TensorView{ge.data, ge.dtype, Shape{{n_ff, n_embd}}};
      w.up = TensorView{ge.row(n_ff), ge.dtype, Shape{{n_ff, n_embd}}};
      w.down = dn.Slice0(e);
    }
    return out;
  }
  for (int e = 0; e < n_expert; ++e) {
    const std::string p = prefix + "." + std::to_string(e) + ".";
    auto& w = out[static_cast<size_t>(e)];
    MOXIE_ASSIGN_OR_RETURN(w.gate, Matmul(p + names.gate + ".weight", {n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(w.up, Matmul(p + names.up + ".weight", {n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(w.down, Matmul(p + names.down + ".weight", {n_embd, n_ff}));
  }
  return out;
}

std::vector<std::string> TensorLoader::Unused() const {
  std::vector<std::string> v;
  for (const auto& n : src_.Names()) {
    if (used_.count(n) == 0) v.push_back(n);
  }
  return v;
}

}  // namespace moxie
