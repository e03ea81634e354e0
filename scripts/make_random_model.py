#!/usr/bin/env python3
"""Writes a random-weight Hugging Face model folder (config.json + model.safetensors) of a given
MoE shape, for benchmarks and load tests. Not a test fixture: its outputs have no reference.

  /usr/bin/python3 scripts/make_random_model.py OUT_DIR [--family qwen3_moe|olmoe|mixtral]
      [--layers 8 --hidden 1024 --heads 16 --kv-heads 4 --head-dim 64 --experts 32 --top-k 4
       --expert-ff 512 --vocab 32000 --dtype bf16|f16|f32 --seed 0]
"""
import argparse
import json
import os

import numpy as np


def to_dtype(a, dtype):
    a = a.astype(np.float32)
    if dtype == "f32":
        return a.tobytes(), "F32"
    if dtype == "f16":
        return a.astype(np.float16).tobytes(), "F16"
    u = a.view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    return r.tobytes(), "BF16"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--family", default="qwen3_moe", choices=["qwen3_moe", "olmoe", "mixtral"])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--experts", type=int, default=32)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--expert-ff", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    H, hd, nh, nkv, E, I, V = a.hidden, a.head_dim, a.heads, a.kv_heads, a.experts, a.expert_ff, a.vocab
    if a.family == "olmoe":
        nkv = nh
    os.makedirs(a.out, exist_ok=True)
    cfg = {"model_type": a.family, "hidden_size": H, "num_hidden_layers": a.layers,
           "num_attention_heads": nh, "num_key_value_heads": nkv, "vocab_size": V,
           "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "num_experts_per_tok": a.top_k, "tie_word_embeddings": False,
           "torch_dtype": {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[a.dtype]}
    if a.family == "qwen3_moe":
        cfg.update(head_dim=hd, num_experts=E, moe_intermediate_size=I, intermediate_size=4 * I,
                   norm_topk_prob=True)
    elif a.family == "olmoe":
        hd = H // nh
        cfg.update(num_experts=E, intermediate_size=I)
    else:
        hd = H // nh
        cfg.update(num_local_experts=E, intermediate_size=I)
    tensors = []

    def add(name, shape, std):
        tensors.append((name, shape, std))

    add("model.embed_tokens.weight", [V, H], 1.0)
    add("model.norm.weight", [H], 0)
    add("lm_head.weight", [V, H], H ** -0.5)
    for l in range(a.layers):
        p_ = f"model.layers.{l}."
        add(p_ + "input_layernorm.weight", [H], 0)
        add(p_ + "post_attention_layernorm.weight", [H], 0)
        add(p_ + "self_attn.q_proj.weight", [nh * hd, H], H ** -0.5)
        add(p_ + "self_attn.k_proj.weight", [nkv * hd, H], H ** -0.5)
        add(p_ + "self_attn.v_proj.weight", [nkv * hd, H], H ** -0.5)
        add(p_ + "self_attn.o_proj.weight", [H, nh * hd], (nh * hd) ** -0.5)
        if a.family == "qwen3_moe":
            add(p_ + "self_attn.q_norm.weight", [hd], 0)
            add(p_ + "self_attn.k_norm.weight", [hd], 0)
        if a.family == "olmoe":
            add(p_ + "self_attn.q_norm.weight", [nh * hd], 0)
            add(p_ + "self_attn.k_norm.weight", [nkv * hd], 0)
        moe = p_ + ("block_sparse_moe." if a.family == "mixtral" else "mlp.")
        names = ("w1", "w3", "w2") if a.family == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        add(moe + "gate.weight", [E, H], 2 * H ** -0.5)
        for e in range(E):
            add(f"{moe}experts.{e}.{names[0]}.weight", [I, H], H ** -0.5)
            add(f"{moe}experts.{e}.{names[1]}.weight", [I, H], H ** -0.5)
            add(f"{moe}experts.{e}.{names[2]}.weight", [H, I], I ** -0.5)
    header, offset, esize = {}, 0, {"bf16": 2, "f16": 2, "f32": 4}[a.dtype]
    dname = {"bf16": "BF16", "f16": "F16", "f32": "F32"}[a.dtype]
    for name, shape, _ in tensors:
        n = int(np.prod(shape)) * esize
        header[name] = {"dtype": dname, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(np.uint64(len(h)).tobytes())
        f.write(h)
        for name, shape, std in tensors:
            arr = (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)) if std == 0 else \
                rng.standard_normal(shape, dtype=np.float32) * std
            f.write(to_dtype(arr, a.dtype)[0])
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    print(f"wrote {a.out}: {offset / 1e9:.2f} GB of {dname} weights")


if __name__ == "__main__":
    main()
