#!/usr/bin/env python3
"""End-to-end tests of the `moxie` CLI: output files against the Hugging Face / llama.cpp
references, and exit codes + messages on bad input. Usage: cli_test.py MOXIE_BINARY DATA_DIR"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MOXIE, DATA = sys.argv[1], sys.argv[2]
MODELS = os.path.join(DATA, "models")
passed, failed = 0, 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def run(*args):
    return subprocess.run([MOXIE, *args], capture_output=True, text=True, timeout=120)


tmp = tempfile.mkdtemp(prefix="moxie_cli_")
for fx in sorted(os.listdir(MODELS)):
    d = os.path.join(MODELS, fx)
    meta = json.load(open(os.path.join(d, "meta.json")))
    r = run("info", "-m", d, "--json")
    check(f"{fx} info exit", r.returncode == 0, r.stderr)
    if r.returncode == 0:
        info = json.loads(r.stdout)
        check(f"{fx} info params", info["params_total"] == meta["params"]["total"]
              and info["params_active"] == meta["params"]["active_per_token"], r.stdout[:200])
    seqs = json.load(open(os.path.join(d, "reference", "sequences.json")))
    ids = ",".join(map(str, seqs["prompt"]["ids"]))
    for mode in ("prefill", "decode"):
        out = os.path.join(tmp, f"{fx}.{mode}.npy")
        rout = os.path.join(tmp, f"{fx}.{mode}.json")
        r = run("logits", "-m", d, "--tokens", ids, "--out", out, "--mode", mode,
                "--routing-out", rout, "-t", "2")
        check(f"{fx} logits {mode} exit", r.returncode == 0, r.stderr)
        if r.returncode != 0:
            continue
        got = np.load(out)
        ref = np.load(os.path.join(d, "reference", f"prompt.{mode}.npy"))
        check(f"{fx} logits {mode} shape", got.shape == ref.shape and got.dtype == np.float32)
        diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else 1e9
        check(f"{fx} logits {mode} within 1e-4", diff <= 1e-4, f"max diff {diff}")
        rt = json.load(open(rout))
        rr = json.load(open(os.path.join(d, "reference", "prompt.routing.json")))
        check(f"{fx} routing layers", rt["moe_layers"] == rr["moe_layers"])
        for a, b in zip(rt["layers"], rr["layers"]):
            check(f"{fx} routing {mode} layer {b['layer']}", a["ids"] == b["ids"])
    g = json.load(open(os.path.join(d, "reference", "greedy.json")))
    r = run("generate", "-m", d, "--tokens", ",".join(map(str, g["prompt"])), "-n", "32",
            "--greedy")
    check(f"{fx} generate", r.returncode == 0 and
          r.stdout.strip() == ",".join(map(str, g["generated"])), r.stdout + r.stderr)

mix = os.path.join(MODELS, "mixtral")
bad_cases = [
    (["info", "-m", "/nonexistent"], "/nonexistent"),
    (["logits", "-m", mix, "--tokens", "1,x", "--out", os.path.join(tmp, "x.npy")],
     "'x' is not a valid token id"),
    (["logits", "-m", mix, "--tokens", "1,,2", "--out", os.path.join(tmp, "x.npy")], "empty entry"),
    (["logits", "-m", mix, "--tokens", "1,99999", "--out", os.path.join(tmp, "x.npy")],
     "outside the vocabulary"),
    (["logits", "-m", mix, "--tokens", "1", "--out", "/nonexistent/dir/x.npy"], "/nonexistent/dir"),
    (["logits", "-m", mix, "--tokens", "1", "--out", os.path.join(tmp, "x.npy"), "--mode", "fast"],
     "fast"),
    (["generate", "-m", mix, "--tokens", "1"], "--greedy"),
    (["logits", "-m", mix], "--tokens"),
    (["frobnicate"], "frobnicate"),
]
for args, needle in bad_cases:
    r = run(*args)
    check(f"bad input {args[:3]}", r.returncode != 0 and needle in (r.stderr + r.stdout),
          f"rc={r.returncode} stderr={r.stderr.strip()[:300]}")

print(f"cli: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
