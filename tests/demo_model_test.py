#!/usr/bin/env python3
"""Checks the shipped demo model (models/moxie-demo-moe) through the CLI:
  files: SHA256SUMS match, config/tensor shapes as `moxie info` reports them, size limit;
  numerics: Moxie's logits on held-out test slices vs the trainer's PyTorch logits (<= 1e-3);
  defaults: `moxie run` without -m uses the demo model and prints English-looking text.
With --perplexity (the heavy test): `moxie perplexity` on the test split equals the trainer's
PyTorch evaluation within 0.5 % (same protocol, same tokens).
Usage: demo_model_test.py MOXIE MODEL_DIR [--perplexity]"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MOXIE, MODEL = sys.argv[1], sys.argv[2]
HEAVY = "--perplexity" in sys.argv
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args, env=None):
    return subprocess.run([MOXIE, *args], capture_output=True, text=True, timeout=1800, env=env)


ref = os.path.join(MODEL, "reference")
if HEAVY:
    want = json.load(open(os.path.join(ref, "perplexity.json")))
    r = run("perplexity", "-m", MODEL, "-f", os.path.join(ref, "test.txt"), "--ctx", str(want["ctx"]),
            "--stride", str(want["stride"]), "--json", "--no-progress", "-t", "2")
    got = json.loads(r.stdout) if r.returncode == 0 else {}
    check("perplexity exit", r.returncode == 0, r.stderr)
    check("perplexity scores the same tokens", got.get("n_scored") == want["n_scored_tokens"],
          f"{got.get('n_scored')} vs {want['n_scored_tokens']}")
    rel = abs(got.get("ppl", 0) - want["ppl"]) / want["ppl"]
    print(f"     moxie ppl {got.get('ppl')}, PyTorch ppl {want['ppl']}, relative diff {rel:.2e}")
    check("perplexity within 0.5 % of PyTorch", rel <= 0.005, f"{rel}")
    print(f"demo: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)

# Shipped files: hashes.
sums = open(os.path.join(MODEL, "SHA256SUMS")).read().split("\n")
for line in filter(None, sums):
    digest, name = line.split(None, 1)
    data = open(os.path.join(MODEL, name.strip().lstrip("*")), "rb").read()
    check(f"sha256 {name.strip()}", hashlib.sha256(data).hexdigest() == digest)
cfg = json.load(open(os.path.join(MODEL, "config.json")))
r = run("info", "-m", MODEL, "--json")
info = json.loads(r.stdout) if r.returncode == 0 else {}
check("info", r.returncode == 0, r.stderr)
check("family qwen2_moe", info.get("family") == "qwen2_moe")
for k_cfg, k_info in (("num_hidden_layers", "n_layer"), ("hidden_size", "n_embd"),
                      ("vocab_size", "n_vocab"), ("num_experts", "n_expert"),
                      ("num_experts_per_tok", "n_expert_used"),
                      ("moe_intermediate_size", "n_ff_expert")):
    check(f"shape {k_cfg}", info.get(k_info) == cfg[k_cfg], f"{info.get(k_info)} vs {cfg[k_cfg]}")
check("weights <= 25 MB", info.get("weight_bytes", 1e12) <= 25e6, info.get("weight_bytes"))
check("all weights BF16", list(info.get("bytes_by_dtype", {}).keys()) == ["BF16"])
check("no unused tensors", info.get("unused_tensors") == [])

# Logits vs PyTorch on held-out sequences.
seqs = json.load(open(os.path.join(ref, "sequences.json")))["sequences"]
tmp = tempfile.mkdtemp()
worst = 0.0
for s in seqs:
    out = os.path.join(tmp, s["name"] + ".npy")
    r = run("logits", "-m", MODEL, "--tokens", ",".join(map(str, s["ids"])), "--out", out)
    if r.returncode != 0:
        check(f"logits {s['name']}", False, r.stderr)
        continue
    d = float(np.abs(np.load(out) - np.load(os.path.join(ref, s["logits_file"]))).max())
    worst = max(worst, d)
    check(f"logits {s['name']} within 1e-3 of PyTorch", d <= 1e-3, f"max diff {d}")
print(f"     max |logit diff| vs PyTorch: {worst:.2e}")

# Default model and readable output.
env = dict(os.environ)
env.pop("MOXIE_MODEL", None)
r = run("run", "-p", "The jury said", "-n", "24", "--temp", "0", "--json", env=env)
o = json.loads(r.stdout) if r.returncode == 0 else {}
check("run without -m uses the demo model", r.returncode == 0 and len(o.get("text", "")) > 20,
      r.stderr)
words = o.get("text", "").split()
check("greedy text is mostly alphabetic words",
      len(words) >= 8 and sum(w.strip('.,;:"?!').isalpha() for w in words) >= 0.6 * len(words),
      o.get("text"))
print(f"     greedy: The jury said{o.get('text', '')!r}")
print(f"demo: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
