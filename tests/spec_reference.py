"""Independent NumPy (float64) reference of the Hugging Face `transformers`
forward pass for the MoE families Moxie supports.

Written from /work/shared/docs/moe-architectures.md (sections 2.1-2.7,
3.1-3.6 and the pitfalls in section 7), not from Moxie's sources, so that it can
cross-check Moxie on configuration variants the shipped fixtures do not cover.

Contents
  * read_safetensors / load_model_dir / write_safetensors: a minimal
    safetensors reader (F32, F16, BF16, F64; sharded via
    model.safetensors.index.json) and an F32 writer.
  * write_random_model(dir, config, seed): a random-weight Hugging Face model
    folder (config.json + model.safetensors) with HF tensor names for
    mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3.
  * forward(config, tensors, tokens): causal prefill over a token list, in
    float64. Returns a Result with logits [T, V], per-MoE-layer selected expert
    ids per token (ascending) and the routing selection margins.

Nothing here imports torch or transformers.
"""

import json
import math
import os
import struct

import numpy as np

SUPPORTED_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                      "deepseek_v2", "deepseek_v3")

# --------------------------------------------------------------------------
# safetensors I/O (doc section 4.1)
# --------------------------------------------------------------------------

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
           "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
           "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}


def read_safetensors(path):
    """Return {name: float64 ndarray} for one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError("unsupported dtype %s for %s" % (dt, name))
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=_DTYPES[dt])
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def load_model_dir(model_dir):
    """Return (config dict, {name: float64 ndarray}) of a HF model folder."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for fn in files:
            tensors.update(read_safetensors(os.path.join(model_dir, fn)))
    else:
        tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, tensors


def write_safetensors(path, tensors):
    """Write {name: array} as F32 safetensors (header padded with spaces to 8)."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


# --------------------------------------------------------------------------
# Config helpers
# --------------------------------------------------------------------------

def _get(cfg, key, default=None):
    v = cfg.get(key, default)
    return default if v is None else v


def is_deepseek(cfg):
    return cfg["model_type"] in ("deepseek_v2", "deepseek_v3")


def layer_is_moe(cfg, L):
    """Dense-vs-MoE layer selection (doc 3.2 'Layer type rule', 3.5, pitfall 13)."""
    mt = cfg["model_type"]
    if mt in ("mixtral", "olmoe"):
        return True
    if mt in ("qwen2_moe", "qwen3_moe"):
        E = _get(cfg, "num_experts", 0)
        step = _get(cfg, "decoder_sparse_step", 1)
        return (L not in _get(cfg, "mlp_only_layers", []) and E > 0
                and (L + 1) % step == 0)
    if is_deepseek(cfg):
        return (cfg.get("n_routed_experts") is not None
                and L >= _get(cfg, "first_k_dense_replace", 0)
                and L % _get(cfg, "moe_layer_freq", 1) == 0)
    raise ValueError("unsupported model_type %s" % mt)


def num_experts(cfg):
    mt = cfg["model_type"]
    if mt == "mixtral":
        return cfg["num_local_experts"]
    if is_deepseek(cfg):
        return cfg["n_routed_experts"]
    return cfg["num_experts"]


def expert_width(cfg):
    """Per-expert width (pitfall 13): Mixtral and OLMoE use intermediate_size."""
    if cfg["model_type"] in ("mixtral", "olmoe"):
        return cfg["intermediate_size"]
    return cfg["moe_intermediate_size"]


def head_dim(cfg):
    hd = cfg.get("head_dim")
    if hd is None:
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    return hd


def rope_params(cfg):
    """Return (base, scaling dict or None) accepting the v4 and v5 spellings."""
    base = cfg.get("rope_theta")
    rs = cfg.get("rope_scaling")
    rp = cfg.get("rope_parameters")
    if rp:
        base = rp.get("rope_theta", base)
        if rs is None:
            rs = rp
    if base is None:
        base = 10000.0
    if rs is not None:
        t = rs.get("rope_type", rs.get("type", "default"))
        if t == "default":
            rs = None
    return float(base), rs


# --------------------------------------------------------------------------
# RoPE (doc 2.3, 2.4)
# --------------------------------------------------------------------------

def _yarn_get_mscale(s, m):
    if s <= 1:
        return 1.0
    return 0.1 * m * math.log(s) + 1.0


def rope_inv_freq(cfg, d):
    """Return (inv_freq [d/2], attention factor multiplying cos and sin)."""
    base, rs = rope_params(cfg)
    i = np.arange(0, d, 2, dtype=np.float64)
    inv = 1.0 / base ** (i / d)
    if rs is None:
        return inv, 1.0
    t = rs.get("rope_type", rs.get("type"))
    if t == "linear":
        return inv / float(rs["factor"]), 1.0
    if t == "yarn":
        orig = rs.get("original_max_position_embeddings")
        f = rs.get("factor")
        if f is None:
            f = cfg["max_position_embeddings"] / orig
        f = float(f)
        if orig is None:
            orig = cfg["max_position_embeddings"]
        mscale = rs.get("mscale")
        mscale_all = rs.get("mscale_all_dim")
        if rs.get("attention_factor") is not None:
            att = float(rs["attention_factor"])
        elif mscale is not None and mscale_all is not None:
            att = _yarn_get_mscale(f, mscale) / _yarn_get_mscale(f, mscale_all)
        else:
            att = _yarn_get_mscale(f, 1.0)
        beta_fast = float(rs.get("beta_fast") or 32)
        beta_slow = float(rs.get("beta_slow") or 1)

        def corr(r):
            return d * math.log(orig / (2 * math.pi * r)) / (2 * math.log(base))
        low, high = corr(beta_fast), corr(beta_slow)
        if rs.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if high == low:
            high += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        w_extra = 1.0 - ramp
        inv = (inv / f) * (1 - w_extra) + inv * w_extra
        return inv, att
    raise ValueError("unsupported rope scaling type %r" % t)


def rope_cos_sin(cfg, d, positions):
    inv, att = rope_inv_freq(cfg, d)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang) * att, np.sin(ang) * att


def apply_rope_neox(x, cos, sin):
    """x [T, heads, d]; pairs (i, i + d/2)."""
    h = x.shape[-1] // 2
    c, s = cos[:, None, :], sin[:, None, :]
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def apply_rope_interleaved(x, cos, sin):
    """x [T, heads, d]; pairs (2i, 2i + 1)."""
    c, s = cos[:, None, :], sin[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x2 * c + x1 * s
    return out


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(z):
    return z / (1.0 + np.exp(-z))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z, axis=-1):
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def linear(x, W, b=None):
    y = x @ W.T
    return y if b is None else y + b


def swiglu(x, gate, up, down):
    return linear(silu(linear(x, gate)) * linear(x, up), down)


def attention_core(q, k, v, scale, window=None):
    """q [T, nh, dk], k [T, nkv, dk], v [T, nkv, dv] -> [T, nh*dv].

    Causal; with `window` W a key j is visible to query i iff i - W < j <= i.
    Query head h uses kv head h // (nh / nkv) (doc 2.5)."""
    T, nh, _ = q.shape
    nkv = k.shape[1]
    rep = nh // nkv
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    vis = j <= i
    if window is not None:
        vis &= j > i - window
    out = np.empty((T, nh, v.shape[-1]))
    for h in range(nh):
        kh = h // rep
        s = (q[:, h, :] @ k[:, kh, :].T) * scale
        s = np.where(vis, s, -np.inf)
        p = softmax(s, axis=-1)
        out[:, h, :] = p @ v[:, kh, :]
    return out.reshape(T, nh * v.shape[-1])


# --------------------------------------------------------------------------
# Routers (doc 2.7)
# --------------------------------------------------------------------------

def _topk_desc(vals, k):
    """Indices of the k largest values (stable: lower index first on ties)."""
    order = np.argsort(-vals, kind="stable")
    return order[:k], order


def _margin(sorted_vals, k):
    if k < len(sorted_vals):
        return float(sorted_vals[k - 1] - sorted_vals[k])
    return float("inf")


def route(cfg, W, x, bias=None):
    """One token's routing. x [H], W [E, H].

    Returns (ids ascending, weights aligned with ids, margin) where margin is
    the smallest gap between the last kept and the first dropped candidate in
    every selection step (group selection and expert selection), measured in
    the space the selection is made in."""
    mt = cfg["model_type"]
    k = cfg["num_experts_per_tok"]
    logits = W @ x
    margins = []
    if mt in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe"):
        # R1
        p = softmax(logits)
        idx, order = _topk_desc(p, k)
        margins.append(_margin(p[order], k))
        w = p[idx]
        renorm = True if mt == "mixtral" else bool(cfg.get("norm_topk_prob", False))
        if renorm:
            w = w / w.sum()
    elif mt == "deepseek_v2":
        # R1 greedy / R5 group_limited_greedy
        p = softmax(logits)
        method = _get(cfg, "topk_method", "greedy")
        if method == "greedy":
            sel = p
        elif method == "group_limited_greedy":
            ng, tg = cfg["n_group"], cfg["topk_group"]
            g = p.reshape(ng, -1).max(axis=-1)
            gidx, gorder = _topk_desc(g, tg)
            margins.append(_margin(g[gorder], tg))
            mask = np.zeros(ng, dtype=bool)
            mask[gidx] = True
            sel = np.where(np.repeat(mask, p.size // ng), p, 0.0)
        else:
            raise ValueError("unsupported topk_method %r" % method)
        idx, order = _topk_desc(sel, k)
        margins.append(_margin(sel[order], k))
        w = sel[idx]
        if k > 1 and cfg.get("norm_topk_prob", False):
            w = w / (w.sum() + 1e-20)
        w = w * _get(cfg, "routed_scaling_factor", 1.0)
    elif mt == "deepseek_v3":
        # R3 noaux_tc
        s = sigmoid(logits)
        c = s + (bias if bias is not None else 0.0)
        ng, tg = _get(cfg, "n_group", 1), _get(cfg, "topk_group", 1)
        cg = c.reshape(ng, -1)
        g = np.sort(cg, axis=-1)[:, ::-1][:, :2].sum(axis=-1)
        gidx, gorder = _topk_desc(g, tg)
        if tg < ng:
            margins.append(_margin(g[gorder], tg))
        mask = np.zeros(ng, dtype=bool)
        mask[gidx] = True
        sel = np.where(np.repeat(mask, c.size // ng), c, 0.0)
        idx, order = _topk_desc(sel, k)
        margins.append(_margin(sel[order], k))
        w = s[idx]
        if k > 1 and cfg.get("norm_topk_prob", False):
            w = w / (w.sum() + 1e-20)
        w = w * _get(cfg, "routed_scaling_factor", 1.0)
    else:
        raise ValueError("unsupported model_type %s" % mt)
    o = np.argsort(idx)
    return idx[o], w[o], min(margins)


# --------------------------------------------------------------------------
# Attention per family
# --------------------------------------------------------------------------

def _std_attention(cfg, t, pre, x, positions):
    """Mixtral / Qwen2-MoE / Qwen3-MoE / OLMoE attention (doc 3.1-3.4)."""
    mt = cfg["model_type"]
    T = x.shape[0]
    nh = cfg["num_attention_heads"]
    nkv = _get(cfg, "num_key_value_heads", nh)
    hd = head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    a = pre + "self_attn."
    q = linear(x, t[a + "q_proj.weight"], t.get(a + "q_proj.bias"))
    k = linear(x, t[a + "k_proj.weight"], t.get(a + "k_proj.bias"))
    v = linear(x, t[a + "v_proj.weight"], t.get(a + "v_proj.bias"))
    if mt == "olmoe":
        q = rmsnorm(q, t[a + "q_norm.weight"], eps)   # full width
        k = rmsnorm(k, t[a + "k_norm.weight"], eps)
        c = cfg.get("clip_qkv")
        if c is not None:
            q, k, v = np.clip(q, -c, c), np.clip(k, -c, c), np.clip(v, -c, c)
    q = q.reshape(T, nh, hd)
    k = k.reshape(T, nkv, hd)
    v = v.reshape(T, nkv, hd)
    if mt == "qwen3_moe":
        q = rmsnorm(q, t[a + "q_norm.weight"], eps)   # per head, before RoPE
        k = rmsnorm(k, t[a + "k_norm.weight"], eps)
    cos, sin = rope_cos_sin(cfg, hd, positions)
    q = apply_rope_neox(q, cos, sin)
    k = apply_rope_neox(k, cos, sin)
    window = None
    if mt == "mixtral" and cfg.get("sliding_window") is not None:
        window = int(cfg["sliding_window"])
    o = attention_core(q, k, v, hd ** -0.5, window)
    return linear(o, t[a + "o_proj.weight"], t.get(a + "o_proj.bias"))


def deepseek_softmax_scale(cfg):
    dq = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    scale = dq ** -0.5
    _, rs = rope_params(cfg)
    if rs is not None:
        mall = rs.get("mscale_all_dim", 0) or 0
        if mall:
            m = _yarn_get_mscale(float(rs["factor"]), mall)
            scale = scale * m * m
    return scale


def _mla_attention(cfg, t, pre, x, positions):
    """DeepSeek-V2/V3 multi-head latent attention (doc 3.5 steps 1-7)."""
    T = x.shape[0]
    nh = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    kvr = cfg["kv_lora_rank"]
    a = pre + "self_attn."
    if cfg.get("q_lora_rank") is None:
        q = linear(x, t[a + "q_proj.weight"])
    else:
        cq = linear(x, t[a + "q_a_proj.weight"])
        cq = rmsnorm(cq, t[a + "q_a_layernorm.weight"], 1e-6)
        q = linear(cq, t[a + "q_b_proj.weight"])
    q = q.reshape(T, nh, dn + dr)
    q_nope, q_pe = q[..., :dn], q[..., dn:]
    ckv = linear(x, t[a + "kv_a_proj_with_mqa.weight"])
    c_kv, k_pe = ckv[:, :kvr], ckv[:, kvr:]
    c_kv = rmsnorm(c_kv, t[a + "kv_a_layernorm.weight"], 1e-6)
    kv = linear(c_kv, t[a + "kv_b_proj.weight"]).reshape(T, nh, dn + dv)
    k_nope, v = kv[..., :dn], kv[..., dn:]
    cos, sin = rope_cos_sin(cfg, dr, positions)
    q_pe = apply_rope_interleaved(q_pe, cos, sin)
    k_pe = apply_rope_interleaved(k_pe[:, None, :], cos, sin)
    Q = np.concatenate([q_nope, q_pe], axis=-1)
    K = np.concatenate([k_nope, np.repeat(k_pe, nh, axis=1)], axis=-1)
    o = attention_core(Q, K, v, deepseek_softmax_scale(cfg))
    return linear(o, t[a + "o_proj.weight"])


# --------------------------------------------------------------------------
# FFN per family
# --------------------------------------------------------------------------

def _ffn(cfg, t, pre, L, x):
    """Returns (out [T, H], ids [T, k], weights [T, k], margins [T]); the last
    three are None for a dense layer."""
    mt = cfg["model_type"]
    if not layer_is_moe(cfg, L):
        m = pre + "mlp."
        return swiglu(x, t[m + "gate_proj.weight"], t[m + "up_proj.weight"],
                      t[m + "down_proj.weight"]), None, None, None
    if mt == "mixtral":
        m = pre + "block_sparse_moe."
        names = ("w1", "w3", "w2")
    else:
        m = pre + "mlp."
        names = ("gate_proj", "up_proj", "down_proj")
    W = t[m + "gate.weight"]
    bias = t.get(m + "gate.e_score_correction_bias")
    T = x.shape[0]
    out = np.zeros_like(x)
    all_ids, all_w, margins = [], [], []
    for ti in range(T):
        ids, ws, mg = route(cfg, W, x[ti], bias)
        all_ids.append([int(e) for e in ids])
        all_w.append([float(w) for w in ws])
        margins.append(mg)
        for e, w in zip(ids, ws):
            p = "%sexperts.%d." % (m, e)
            out[ti] += w * swiglu(x[ti:ti + 1], t[p + names[0] + ".weight"],
                                  t[p + names[1] + ".weight"],
                                  t[p + names[2] + ".weight"])[0]
    if mt == "qwen2_moe" and (m + "shared_expert.gate_proj.weight") in t:
        s = m + "shared_expert."
        sh = swiglu(x, t[s + "gate_proj.weight"], t[s + "up_proj.weight"],
                    t[s + "down_proj.weight"])
        g = sigmoid(linear(x, t[m + "shared_expert_gate.weight"]))  # [T, 1]
        out = out + g * sh
    if is_deepseek(cfg) and _get(cfg, "n_shared_experts", 0):
        s = m + "shared_experts."
        out = out + swiglu(x, t[s + "gate_proj.weight"], t[s + "up_proj.weight"],
                           t[s + "down_proj.weight"])
    return out, all_ids, all_w, margins


# --------------------------------------------------------------------------
# Whole model
# --------------------------------------------------------------------------

class Result(object):
    def __init__(self, logits, routing, weights, margins, hidden):
        self.logits = logits          # [T, V] float64
        self.routing = routing        # {layer: [[ids ascending] per token]}
        self.weights = weights        # {layer: [[weights aligned with ids]]}
        self.margins = margins        # {layer: [margin per token]}
        self.hidden = hidden          # final normed hidden states [T, H]

    def min_margin(self):
        vals = [m for ms in self.margins.values() for m in ms]
        return min(vals) if vals else float("inf")


def forward(cfg, tensors, tokens, positions=None):
    mt = cfg["model_type"]
    if mt not in SUPPORTED_FAMILIES:
        raise ValueError("unsupported model_type %s" % mt)
    t = tensors
    tokens = np.asarray(tokens, dtype=np.int64)
    if positions is None:
        positions = np.arange(len(tokens))
    eps = cfg["rms_norm_eps"]
    h = t["model.embed_tokens.weight"][tokens].astype(np.float64)
    routing, weights, margins = {}, {}, {}
    for L in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % L
        xn = rmsnorm(h, t[pre + "input_layernorm.weight"], eps)
        if is_deepseek(cfg):
            h = h + _mla_attention(cfg, t, pre, xn, positions)
        else:
            h = h + _std_attention(cfg, t, pre, xn, positions)
        xn = rmsnorm(h, t[pre + "post_attention_layernorm.weight"], eps)
        f, ids, ws, mg = _ffn(cfg, t, pre, L, xn)
        h = h + f
        if ids is not None:
            routing[L] = ids
            weights[L] = ws
            margins[L] = mg
    hn = rmsnorm(h, t["model.norm.weight"], eps)
    head = t.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings", False):
        head = t["model.embed_tokens.weight"]
    return Result(hn @ head.T, routing, weights, margins, hn)


def forward_dir(model_dir, tokens):
    cfg, t = load_model_dir(model_dir)
    return forward(cfg, t, tokens)


# --------------------------------------------------------------------------
# Random-weight model writer
# --------------------------------------------------------------------------

def tensor_shapes(cfg):
    """{name: (shape, kind)} with HF names; kind picks the init distribution."""
    mt = cfg["model_type"]
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    S = {}

    def lin(name, out, inp, kind="linear"):
        S[name] = ((out, inp), kind)

    S["model.embed_tokens.weight"] = ((V, H), "embed")
    S["model.norm.weight"] = ((H,), "norm")
    if not cfg.get("tie_word_embeddings", False):
        lin("lm_head.weight", V, H)
    E = num_experts(cfg)
    for L in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % L
        S[p + "input_layernorm.weight"] = ((H,), "norm")
        S[p + "post_attention_layernorm.weight"] = ((H,), "norm")
        a = p + "self_attn."
        if is_deepseek(cfg):
            nh = cfg["num_attention_heads"]
            dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
            kvr = cfg["kv_lora_rank"]
            qr = cfg.get("q_lora_rank")
            if qr is None:
                lin(a + "q_proj.weight", nh * (dn + dr), H)
            else:
                lin(a + "q_a_proj.weight", qr, H)
                S[a + "q_a_layernorm.weight"] = ((qr,), "norm")
                lin(a + "q_b_proj.weight", nh * (dn + dr), qr)
            lin(a + "kv_a_proj_with_mqa.weight", kvr + dr, H)
            S[a + "kv_a_layernorm.weight"] = ((kvr,), "norm")
            lin(a + "kv_b_proj.weight", nh * (dn + dv), kvr)
            lin(a + "o_proj.weight", H, nh * dv)
        else:
            nh = cfg["num_attention_heads"]
            nkv = _get(cfg, "num_key_value_heads", nh)
            hd = head_dim(cfg)
            lin(a + "q_proj.weight", nh * hd, H)
            lin(a + "k_proj.weight", nkv * hd, H)
            lin(a + "v_proj.weight", nkv * hd, H)
            lin(a + "o_proj.weight", H, nh * hd)
            qkv_bias = (mt == "qwen2_moe" and cfg.get("qkv_bias", True)) or \
                       (mt in ("qwen3_moe", "olmoe") and cfg.get("attention_bias", False))
            if qkv_bias:
                S[a + "q_proj.bias"] = ((nh * hd,), "bias")
                S[a + "k_proj.bias"] = ((nkv * hd,), "bias")
                S[a + "v_proj.bias"] = ((nkv * hd,), "bias")
            if mt in ("qwen3_moe", "olmoe") and cfg.get("attention_bias", False):
                # HF builds o_proj with bias=config.attention_bias for these two
                S[a + "o_proj.bias"] = ((H,), "bias")
            if mt == "qwen3_moe":
                S[a + "q_norm.weight"] = ((hd,), "norm")
                S[a + "k_norm.weight"] = ((hd,), "norm")
            if mt == "olmoe":
                S[a + "q_norm.weight"] = ((nh * hd,), "norm")
                S[a + "k_norm.weight"] = ((nkv * hd,), "norm")
        if layer_is_moe(cfg, L):
            I = expert_width(cfg)
            if mt == "mixtral":
                m = p + "block_sparse_moe."
                names = ("w1", "w3", "w2")
            else:
                m = p + "mlp."
                names = ("gate_proj", "up_proj", "down_proj")
            lin(m + "gate.weight", E, H, "router")
            for e in range(E):
                ep = "%sexperts.%d." % (m, e)
                lin(ep + names[0] + ".weight", I, H)
                lin(ep + names[1] + ".weight", I, H)
                lin(ep + names[2] + ".weight", H, I)
            if mt == "qwen2_moe":
                Is = cfg["shared_expert_intermediate_size"]
                s = m + "shared_expert."
                lin(s + "gate_proj.weight", Is, H)
                lin(s + "up_proj.weight", Is, H)
                lin(s + "down_proj.weight", H, Is)
                lin(m + "shared_expert_gate.weight", 1, H)
            if is_deepseek(cfg) and _get(cfg, "n_shared_experts", 0):
                Is = I * cfg["n_shared_experts"]
                s = m + "shared_experts."
                lin(s + "gate_proj.weight", Is, H)
                lin(s + "up_proj.weight", Is, H)
                lin(s + "down_proj.weight", H, Is)
            if mt == "deepseek_v3" and _get(cfg, "topk_method", "noaux_tc") == "noaux_tc":
                S[m + "gate.e_score_correction_bias"] = ((E,), "ebias")
        else:
            Id = cfg["intermediate_size"]
            m = p + "mlp."
            lin(m + "gate_proj.weight", Id, H)
            lin(m + "up_proj.weight", Id, H)
            lin(m + "down_proj.weight", H, Id)
    return S


def random_tensors(cfg, seed):
    """Seeded weights with O(1) activations: embeddings N(0,1), linear
    N(0,1/fan_in), routers N(0,4/fan_in), norms 1+0.2N(0,1), biases 0.2N(0,1),
    correction bias 0.1N(0,1). Returned as float32-representable float64."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, kind) in sorted(tensor_shapes(cfg).items()):
        z = rng.standard_normal(shape)
        if kind == "embed":
            a = z
        elif kind == "linear":
            a = z / math.sqrt(shape[-1])
        elif kind == "router":
            a = z * 2.0 / math.sqrt(shape[-1])
        elif kind == "norm":
            a = 1.0 + 0.2 * z
        elif kind == "bias":
            a = 0.2 * z
        elif kind == "ebias":
            a = 0.1 * z
        else:
            raise AssertionError(kind)
        out[name] = a.astype(np.float32).astype(np.float64)
    return out


_ARCH = {"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
         "qwen3_moe": "Qwen3MoeForCausalLM", "olmoe": "OlmoeForCausalLM",
         "deepseek_v2": "DeepseekV2ForCausalLM", "deepseek_v3": "DeepseekV3ForCausalLM"}


def write_model(model_dir, cfg, tensors):
    os.makedirs(model_dir, exist_ok=True)
    c = dict(cfg)
    c.setdefault("architectures", [_ARCH[cfg["model_type"]]])
    c.setdefault("torch_dtype", "float32")
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)


def write_random_model(model_dir, cfg, seed):
    """Write config.json + model.safetensors (F32); return the tensors."""
    t = random_tensors(cfg, seed)
    write_model(model_dir, cfg, t)
    return t
