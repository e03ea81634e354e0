#include "models/loader.h"

#include "kernels/kernel_table.h"

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
    MOXIE_ASSIGN_OR_RETURN(TensorView g, Weight(prefix + ".gate_proj", {n_expert, n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(TensorView u, Weight(prefix + ".up_proj", {n_expert, n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(TensorView d, Weight(prefix + ".down_proj", {n_expert, n_embd, n_ff}));
    for (int e = 0; e < n_expert; ++e) {
      out[static_cast<size_t>(e)] = ExpertWeights{g.Slice0(e), u.Slice0(e), d.Slice0(e)};
    }
    return out;
  }
  const std::string fused_gu = prefix + ".gate_up_proj";
  if (!Has(prefix + ".0." + names.gate + ".weight") && Has(fused_gu)) {
    MOXIE_ASSIGN_OR_RETURN(TensorView gu, Weight(fused_gu, {n_expert, 2 * n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(TensorView dn, Weight(prefix + ".down_proj", {n_expert, n_embd, n_ff}));
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
    MOXIE_ASSIGN_OR_RETURN(w.gate, Weight(p + names.gate + ".weight", {n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(w.up, Weight(p + names.up + ".weight", {n_ff, n_embd}));
    MOXIE_ASSIGN_OR_RETURN(w.down, Weight(p + names.down + ".weight", {n_embd, n_ff}));
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
