#!/usr/bin/env python3
"""Decode speed against the memory-bandwidth roofline, measured side by side in one run.

  /usr/bin/python3 scripts/bench_decode.py MODEL_DIR [MODEL_DIR ...] [--reps 3] [--threads 2]

For each model: bytes read per decoded token = every weight a token touches (attention, norms,
router, top-k experts per MoE layer, shared experts, lm_head, one embedding row), from
`moxie info --json`. Rounds alternate the bandwidth probe (bench/membw.cc) and `moxie generate`
(8-token prompt, 64 greedy tokens), so both see the same machine state; the table reports medians
and the min-max spread. Roofline share = decode tok/s x bytes/token / probe bandwidth."""
import argparse
import json
import re
import statistics
import subprocess

p = argparse.ArgumentParser()
p.add_argument("models", nargs="+")
p.add_argument("--reps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--bin", default="build/bin")
a = p.parse_args()

DSIZE = {"F32": 4, "F16": 2, "BF16": 2}
print(f"| model | dtype | bytes/token | decode tok/s (median, min-max) | probe GB/s (median) | share of roofline |")
print(f"|---|---|---|---|---|---|")
for m in a.models:
    info = json.loads(subprocess.run([f"{a.bin}/moxie", "info", "-m", m, "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    dt = max(info["bytes_by_dtype"], key=info["bytes_by_dtype"].get)
    per_tok = (info["params_active"] - info["n_vocab"] * info["n_embd"] + info["n_embd"]) * DSIZE[dt]
    tps, bw = [], []
    for _ in range(a.reps):
        out = subprocess.run([f"{a.bin}/moxie_membw", str(a.threads), "1024", "3"],
                             capture_output=True, text=True, check=True).stdout
        bw.append(float(re.search(r"median ([\d.]+) GB/s", out).group(1)))
        err = subprocess.run([f"{a.bin}/moxie", "generate", "-m", m, "--tokens", "1,2,3,4,5,6,7,8",
                              "-n", "64", "--greedy", "-t", str(a.threads)],
                             capture_output=True, text=True, check=True).stderr
        tps.append(float(re.search(r"decode \d+ tokens ([\d.]+) tok/s", err).group(1)))
    t, b = statistics.median(tps), statistics.median(bw)
    print(f"| {m} | {dt} | {per_tok / 1e6:.0f} MB | {t:.1f} ({min(tps):.1f}-{max(tps):.1f}) | "
          f"{b:.1f} | {100 * t * per_tok / 1e9 / b:.0f} % |")
