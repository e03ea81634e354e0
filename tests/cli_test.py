#!/usr/bin/env python3
"""End-to-end tests of the `moxie` CLI: output files against the Hugging Face / llama.cpp
references, and exit codes + messages on bad input. Usage: cli_test.py MOXIE_BINARY DATA_DIR"""
import json
import os
import shutil
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

# Text in/out on every fixture: the prompt text tokenizes to the reference ids, greedy `run`
# reproduces the reference tokens, detokenize inverts tokenize.
for fx in sorted(os.listdir(MODELS)):
    d = os.path.join(MODELS, fx)
    seqs = json.load(open(os.path.join(d, "reference", "sequences.json")))
    g = json.load(open(os.path.join(d, "reference", "greedy.json")))
    text = seqs["prompt"]["text"]
    r = run("tokenize", "-m", d, text)
    check(f"{fx} tokenize", r.returncode == 0 and
          r.stdout.strip() == ",".join(map(str, seqs["prompt"]["ids"])), r.stdout + r.stderr)
    r = run("detokenize", "-m", d, ",".join(map(str, seqs["prompt"]["ids"])))
    check(f"{fx} detokenize", r.returncode == 0 and r.stdout == text, repr(r.stdout) + r.stderr)
    r = run("run", "-m", d, "-p", text, "-n", "32", "--temp", "0", "--ignore-eos", "--json", "-t", "2")
    ok = r.returncode == 0
    out = json.loads(r.stdout) if ok else {}
    check(f"{fx} run --json greedy tokens", ok and out["tokens"] == g["generated"] and
          out["prompt_tokens"] == g["prompt"], r.stdout[:300] + r.stderr)

q3 = os.path.join(MODELS, "qwen3moe")
prompt = json.load(open(os.path.join(q3, "reference", "sequences.json")))["prompt"]["text"]
r = run("tokenize", "-m", q3, "--pieces", "Hello")
lines = r.stdout.strip().split("\n")
check("tokenize --pieces", r.returncode == 0 and all("\t" in ln for ln in lines), r.stdout)
a = run("run", "-m", q3, "-p", prompt, "-n", "24", "--seed", "5", "--temp", "0.9", "--json")
b = run("run", "-m", q3, "-p", prompt, "-n", "24", "--seed", "5", "--temp", "0.9", "--json")
c = run("run", "-m", q3, "-p", prompt, "-n", "24", "--seed", "6", "--temp", "0.9", "--json")
check("run same seed same text", a.returncode == 0 and json.loads(a.stdout)["text"] == json.loads(b.stdout)["text"], a.stderr)
check("run other seed other text", json.loads(a.stdout)["tokens"] != json.loads(c.stdout)["tokens"])
greedy = json.loads(run("run", "-m", q3, "-p", prompt, "-n", "32", "--temp", "0", "--json").stdout)
stop = greedy["text"][6:10]
r = run("run", "-m", q3, "-p", prompt, "-n", "32", "--temp", "0", "--json", "--stop", stop)
o = json.loads(r.stdout) if r.returncode == 0 else {}
check("run --stop cuts before the stop string",
      o.get("finish_reason") == "stop" and o.get("text") == greedy["text"][:greedy["text"].find(stop)],
      r.stdout[:300] + r.stderr)
r = run("run", "-m", q3, "-p", prompt, "-n", "4", "--temp", "0")
check("run streams text to stdout", r.returncode == 0 and len(r.stdout.strip()) > 0, r.stderr)
bad = os.path.join(tmp, "bad_utf8.txt")
open(bad, "wb").write(b"The quick \xff\xfe brown")
r = run("run", "-m", q3, "-f", bad, "-n", "4", "--temp", "0", "--json")
check("run with invalid UTF-8 prompt (replaced by U+FFFD)", r.returncode == 0, r.stderr)
r = run("run", "-m", q3, "-p", prompt * 20, "-n", "4", "--ctx", "64")
check("run prompt longer than the context", r.returncode != 0 and "context" in r.stderr, r.stderr)
r = run("run", "-m", q3, "-p", prompt, "--top-p", "0")
check("run bad sampler flag", r.returncode != 0 and "--top-p" in r.stderr, r.stderr)
broken = os.path.join(tmp, "unigram_model")
shutil.copytree(q3, broken)
tj = json.load(open(os.path.join(broken, "tokenizer.json")))
tj["model"]["type"] = "Unigram"
json.dump(tj, open(os.path.join(broken, "tokenizer.json"), "w"))
r = run("tokenize", "-m", broken, "hi")
check("tokenizer of an unsupported model type", r.returncode != 0 and "Unigram" in r.stderr, r.stderr)

# Tokenizers from GGUF metadata through the CLI (a few vectors each; the unit tests run all 46).
for vocab in ("qwen2", "llama-spm"):
    base = os.path.join(DATA, "tokenizers", vocab, f"ggml-vocab-{vocab}.gguf")
    tests = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
    outs = open(base + ".out").read().split("\n")
    for i in (11, 14, 20, 29, 45):
        r = run("tokenize", "-m", base, "--no-add-special", "--no-parse-special", tests[i])
        check(f"tokenize {vocab}.gguf case {i}",
              r.returncode == 0 and r.stdout.strip() == ",".join(outs[i].split()), r.stdout + r.stderr)

# Perplexity: `moxie perplexity` equals the strided protocol computed here from `moxie logits`.
ptxt = os.path.join(tmp, "ppl.txt")
open(ptxt, "w").write(("The quick brown fox jumps over the lazy dog. Hello world! " * 6).strip())
toks = list(map(int, run("tokenize", "-m", q3, open(ptxt).read()).stdout.strip().split(",")))
CTX, STRIDE = 32, 12
nll, nsc, prev, b = 0.0, 0, 0, 0
while True:
    e = min(b + CTX, len(toks))
    lo = os.path.join(tmp, "w.npy")
    run("logits", "-m", q3, "--tokens", ",".join(map(str, toks[b:e])), "--out", lo)
    L = np.load(lo).astype(np.float64)
    for t in range(max(prev, b + 1), e):
        row = L[t - 1 - b]
        nll += np.log(np.exp(row - row.max()).sum()) + row.max() - row[toks[t]]
        nsc += 1
    prev = e
    if e >= len(toks):
        break
    b += STRIDE
r = run("perplexity", "-m", q3, "-f", ptxt, "--ctx", str(CTX), "--stride", str(STRIDE), "--json",
        "--no-progress")
pj = json.loads(r.stdout) if r.returncode == 0 else {}
check("perplexity matches the strided protocol", pj.get("n_scored") == nsc and
      abs(pj.get("nll_sum", 0) - nll) <= 1e-4 * nll, f"{pj} vs nll {nll} n {nsc}")
r = run("perplexity", "-m", q3, "-f", ptxt, "--ctx", "16", "--stride", "32")
check("perplexity stride > ctx", r.returncode != 0 and "--stride" in r.stderr, r.stderr)

# quantize: writes a loadable GGUF with a summary; refuses to overwrite; KL report of
# `perplexity --kl-base` equals KL computed here from both models' `moxie logits`.
qout = os.path.join(tmp, "q3.q8_0.gguf")
r = run("quantize", "-m", q3, "--type", "q8_0", "-o", qout, "--no-progress")
check("quantize exit", r.returncode == 0 and os.path.exists(qout), r.stderr)
check("quantize summary", "bits per weight" in r.stdout and "experts" in r.stdout and "Q8_0" in r.stdout,
      r.stdout)
r = run("quantize", "-m", q3, "--type", "q8_0", "-o", qout)
check("quantize refuses overwrite", r.returncode != 0 and "--force" in r.stderr, r.stderr)
r = run("quantize", "-m", q3, "--type", "q8_0", "-o", qout, "--force", "--no-progress")
check("quantize --force", r.returncode == 0, r.stderr)
r = run("perplexity", "-m", q3, "--kl-base", q3, "-f", ptxt, "--ctx", "64", "--json", "--no-progress")
kj = json.loads(r.stdout) if r.returncode == 0 else {}
check("kl vs itself", kj.get("kl_max", 1) <= 1e-9 and kj.get("top1_agreement") == 1.0, r.stdout + r.stderr)
seq = toks  # one window: --ctx covers the whole text
for path, name in ((q3, "f32"), (qout, "q8")):
    run("logits", "-m", path, "--tokens", ",".join(map(str, seq)), "--out", os.path.join(tmp, f"kl_{name}.npy"))
A = np.load(os.path.join(tmp, "kl_f32.npy")).astype(np.float64)[:-1]
B = np.load(os.path.join(tmp, "kl_q8.npy")).astype(np.float64)[:-1]
lpa = A - A.max(1, keepdims=True); lpa -= np.log(np.exp(lpa).sum(1, keepdims=True))
lpb = B - B.max(1, keepdims=True); lpb -= np.log(np.exp(lpb).sum(1, keepdims=True))
kl = (np.exp(lpa) * (lpa - lpb)).sum(1)
assert len(toks) < 200
r = run("perplexity", "-m", qout, "--kl-base", q3, "-f", ptxt, "--ctx", "200", "--json", "--no-progress")
kj = json.loads(r.stdout) if r.returncode == 0 else {}
check("kl q8_0 vs f32 matches numpy", kj.get("n_scored") == len(seq) - 1 and
      abs(kj.get("kl_mean", -1) - kl.mean()) <= 1e-6 + 1e-3 * kl.mean() and kl.mean() > 0 and
      abs(kj.get("top1_agreement", -1) - (A.argmax(1) == B.argmax(1)).mean()) < 1e-9,
      f"{kj} vs numpy kl {kl.mean()}")

# synth: every architecture loads and generates; the parameter count equals the shape's formula;
# the same seed gives the same bytes, another seed other bytes.
import hashlib
for arch in ("qwen3moe", "olmoe", "qwen2moe", "mixtral", "deepseek2"):
    sp = os.path.join(tmp, f"tiny_{arch}.gguf")
    r = run("synth", "--shape", "tiny", "--arch", arch, "--type", "q8_0", "-o", sp, "--no-progress")
    check(f"synth tiny {arch}", r.returncode == 0, r.stderr)
    r = run("generate", "-m", sp, "--tokens", "1,2,3", "-n", "4", "--greedy")
    check(f"synth tiny {arch} generates", r.returncode == 0 and len(r.stdout.strip().split(",")) == 4, r.stderr)
r = run("info", "-m", os.path.join(tmp, "tiny_qwen3moe.gguf"), "--json")
inf = json.loads(r.stdout) if r.returncode == 0 else {}
H, V, L, nh, nkv, hd, E, F = 256, 1024, 2, 4, 2, 64, 8, 256
want = 2 * V * H + H + L * (2 * H + 2 * hd + H * nh * hd * 2 + 2 * H * nkv * hd + E * H + 3 * E * F * H)
check("synth tiny params", inf.get("params_total") == want and inf.get("n_expert") == E, f"{inf.get('params_total')} vs {want}")
def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
a, b, c = (os.path.join(tmp, f"seed{i}.gguf") for i in range(3))
run("synth", "--shape", "tiny", "--type", "q4_k", "--seed", "7", "-o", a, "--no-progress")
run("synth", "--shape", "tiny", "--type", "q4_k", "--seed", "7", "-o", b, "--no-progress")
run("synth", "--shape", "tiny", "--type", "q4_k", "--seed", "8", "-o", c, "--no-progress")
check("synth deterministic", os.path.exists(a) and sha(a) == sha(b) and sha(a) != sha(c))
# The Q4_K_M recipe through the CLI: a mix of types in the summary, and the file generates.
km = os.path.join(tmp, "q4km.gguf")
r = run("synth", "--shape", "tiny", "--type", "q4_k_m", "-o", km, "--no-progress")
check("synth q4_k_m", r.returncode == 0 and "Q6_K" in r.stdout and "Q4_K" in r.stdout, r.stdout + r.stderr)
r = run("generate", "-m", km, "--tokens", "1,2,3", "-n", "3", "--greedy")
check("synth q4_k_m generates", r.returncode == 0 and len(r.stdout.strip().split(",")) == 3, r.stderr)

# `moxie bench -o json`: the documented fields; -d (context depth) and --kv-type move the bytes a
# decoded token reads by the K/V rows of its context (config: layers x 2 x kv heads x head_dim).
q3 = os.path.join(MODELS, "qwen3moe")
cfg = json.load(open(os.path.join(q3, "config.json")))
kv_elems = cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * cfg["head_dim"]
benches = {}
for kv, depth in (("f32", 0), ("f16", 16)):
    r = run("bench", "-m", q3, "-p", "8", "-n", "4", "-r", "1", "-b", "1,2", "-o", "json", "--no-bandwidth",
            "-t", "2", "--kv-type", kv, "-d", str(depth))
    check(f"bench {kv} exit", r.returncode == 0, r.stderr)
    if r.returncode == 0:
        j = json.loads(r.stdout)
        benches[kv] = j
        check(f"bench {kv} fields", j["kv_type"] == kv and j["depth"] == depth and j["prefill_tok_s"] > 0
              and j["decode_tok_s"] > 0 and j["batched"]["2"]["tok_s"] > 0 and j["peak_rss_bytes"] > 0, r.stdout[:400])
        check(f"bench {kv} kv bytes", j["kv_bytes_per_position"] == kv_elems * (4 if kv == "f32" else 2),
              f"{j['kv_bytes_per_position']} vs {kv_elems} elements")
        # Read rates: the counted bytes over the test's time (tok/s x bytes per token or step / B), and
        # the experts' bytes over the expert phase (positive: the model has MoE layers).
        b2 = j["batched"]["2"]
        check(f"bench {kv} read rates",
              abs(j["decode_read_gb_s"] - j["decode_tok_s"] * j["decode_bytes_per_token"] / 1e9)
              <= 1e-3 * j["decode_read_gb_s"]
              and abs(b2["read_gb_s"] - b2["tok_s"] * b2["bytes_per_step"] / 2 / 1e9) <= 1e-3 * b2["read_gb_s"]
              and j["decode_expert_read_gb_s"] > 0 and b2["expert_read_gb_s"] > 0, r.stdout[:600])
        # Each timed test's idle shares: one per thread, within [0, 1], and the pool ran jobs.
        idles = [j["prefill_idle"], j["decode_idle"], b2["idle"]]
        check(f"bench {kv} idle shares",
              all(len(i["thread_idle_share"]) == 2 and all(0 <= x <= 1 for x in i["thread_idle_share"])
                  and i["jobs_per_step"] > 0 for i in idles), json.dumps(idles))
if len(benches) == 2:
    a, b = benches["f32"], benches["f16"]
    want = (kv_elems * 2 * (16 + 2.5)) - (kv_elems * 4 * 2.5)
    got = b["decode_bytes_per_token"] - a["decode_bytes_per_token"]
    check("bench depth counts the context's K/V reads", abs(got - want) <= 2, f"{got} vs {want}")
# --identical-sequences: every sequence decodes the same tokens, so a step runs exactly the k
# experts of one sequence per layer; distinct tokens run more (their union).
r = run("bench", "-m", q3, "-p", "0", "-n", "6", "-r", "1", "-b", "4", "-o", "json", "--no-bandwidth", "-t", "2",
        "--identical-sequences")
k = cfg["num_experts_per_tok"]
if r.returncode == 0:
    j = json.loads(r.stdout)
    check("bench identical sequences route alike", j["identical_sequences"] and j["batched"]["4"]["experts_per_layer"] == k,
          r.stdout[:400])
else:
    check("bench identical sequences exit", False, r.stderr)
r = run("bench", "-m", q3, "-p", "0", "-n", "6", "-r", "1", "-b", "4", "-o", "json", "--no-bandwidth", "-t", "2")
check("bench distinct sequences route apart", r.returncode == 0 and
      json.loads(r.stdout)["batched"]["4"]["experts_per_layer"] > k, r.stdout[:400] + r.stderr)
# A prefill as long as the model's whole context is allowed (the default -p 512 on a 512-position model).
r = run("bench", "-m", q3, "-p", str(cfg["max_position_embeddings"]), "-n", "4", "-r", "1", "--no-bandwidth", "-t", "2")
check("bench prefill of the whole context", r.returncode == 0, r.stderr[-300:])
r = run("bench", "-m", q3, "-p", "8", "-n", "4", "-r", "1", "--no-bandwidth", "-t", "2", "--kv-type", "f16")
check("bench md names the KV cache", r.returncode == 0 and "KV cache f16" in r.stdout, r.stdout + r.stderr)

# --bf16-activations: on a CPU with AVX512_BF16 a BF16 model's logits move (activations rounded to
# bf16) but stay near the reference; elsewhere the flag changes nothing. bench reports which.
has_bf16 = "avx512_bf16" in open("/proc/cpuinfo").read().split()
bf = os.path.join(MODELS, "qwen2moe-bf16-sharded")
bf_ids = ",".join(map(str, json.load(open(os.path.join(bf, "reference", "sequences.json")))["prompt"]["ids"]))
bf_ref = np.load(os.path.join(bf, "reference", "prompt.prefill.npy"))
bf_out = os.path.join(tmp, "bf16act.npy")
r = run("logits", "-m", bf, "--tokens", bf_ids, "--out", bf_out, "-t", "2", "--bf16-activations")
check("logits --bf16-activations exit", r.returncode == 0, r.stderr)
if r.returncode == 0:
    d_bf = float(np.abs(np.load(bf_out) - bf_ref).max())
    if has_bf16:
        check("--bf16-activations moves the logits a little", 1e-4 < d_bf < 0.1, f"max diff {d_bf}")
    else:
        check("--bf16-activations without AVX512_BF16 is exact", d_bf <= 1e-4, f"max diff {d_bf}")
r = run("bench", "-m", bf, "-p", "8", "-n", "2", "-r", "1", "--no-bandwidth", "-t", "2", "-o", "json",
        "--bf16-activations")
check("bench --bf16-activations reports the path", r.returncode == 0 and
      json.loads(r.stdout)["bf16_activations"] == has_bf16, r.stdout[-300:] + r.stderr[-300:])

# Strings that are not UTF-8 (here the file name; a GGUF's names and metadata alike) come out of
# --json as U+FFFD instead of aborting the program (found by scripts/fuzz_loaders.py).
odd = os.path.join(os.fsencode(tmp), b"m\x80.gguf")
shutil.copy(os.fsencode(os.path.join(MODELS, "mixtral", "model.q8_0.gguf")), odd)
for cmd in ([b"info", b"-m", odd, b"--json"],
            [b"bench", b"-m", odd, b"-p", b"4", b"-n", b"2", b"-r", b"1", b"--no-bandwidth", b"-o", b"json"]):
    r = subprocess.run([os.fsencode(MOXIE), *cmd], capture_output=True, timeout=120)
    ok = r.returncode == 0
    if ok:
        out = r.stdout.decode("utf-8")
        ok = "\ufffd" in json.loads(out[:out.rindex("}") + 1]).get("source", json.loads(out[:out.rindex("}") + 1]).get("model", ""))
    check(f"non-UTF-8 name in {cmd[0].decode()} --json", ok, r.stderr.decode(errors="replace")[-300:])

mix = os.path.join(MODELS, "mixtral")
bad_cases = [
    (["info", "-m", "/nonexistent"], "/nonexistent"),
    (["logits", "-m", mix, "--tokens", "1,x", "--out", os.path.join(tmp, "x.npy")],
     "'x' is not a valid token id"),
    (["logits", "-m", mix, "--tokens", "1,,2", "--out", os.path.join(tmp, "x.npy")], "empty entry"),
    (["bench", "-m", mix, "-b", "1,-4"], "'-4' is not a valid batch size"),
    (["logits", "-m", mix, "--tokens", "1,99999", "--out", os.path.join(tmp, "x.npy")],
     "outside the vocabulary"),
    (["logits", "-m", mix, "--tokens", "1", "--out", "/nonexistent/dir/x.npy"], "/nonexistent/dir"),
    (["logits", "-m", mix, "--tokens", "1", "--out", os.path.join(tmp, "x.npy"), "--mode", "fast"],
     "fast"),
    (["generate", "-m", mix, "--tokens", "1"], "--greedy"),
    (["logits", "-m", mix], "--tokens"),
    (["frobnicate"], "frobnicate"),
    (["synth", "--shape", "huge", "--type", "q8_0", "-o", os.path.join(tmp, "x.gguf")], "huge"),
    (["synth", "--shape", "qwen3-30b-a3b", "--arch", "olmoe", "--type", "q8_0", "-o", os.path.join(tmp, "x.gguf")],
     "head_dim"),
    (["synth", "--shape", "deepseek-v2-lite", "--arch", "qwen3moe", "--type", "q8_0", "-o", os.path.join(tmp, "x.gguf")],
     "MLA"),
    (["quantize", "-m", mix, "--type", "q3_k", "-o", os.path.join(tmp, "x.gguf")], "q3_k"),
    (["synth", "--shape", "tiny", "--type", "q4_k_l", "-o", os.path.join(tmp, "x.gguf")], "q4_k_m, q5_k_m"),
    (["quantize", "-m", mix, "--type", "q8_0", "--keep", "attn", "-o", os.path.join(tmp, "x.gguf")], "attn"),
    (["quantize", "-m", mix, "--type", "q8_0", "--keep", "attn=q9", "-o", os.path.join(tmp, "x.gguf")], "q9"),
    (["quantize", "-m", mix, "-o", os.path.join(tmp, "x.gguf")], "--type"),
    (["quantize", "-m", mix, "--expert-types", "/nonexistent.json", "-o", os.path.join(tmp, "x.gguf")],
     "/nonexistent.json"),
    (["bench", "-m", q3, "--kv-type", "q8_0"], "q8_0"),
    (["bench", "-m", q3, "-p", "8", "-n", "4", "-d", "300"], "exceeds the model's context"),
    (["bench", "-m", q3, "-p", "200", "-n", "4", "-d", "57", "--no-bandwidth"], "exceeds the model's context"),
    (["run", "-m", q3, "--kv-type", "bf16", "-p", "hi"], "bf16"),
    (["serve", "-m", q3, "--kv-type", "q4_0"], "q4_0"),
    (["perplexity", "-m", mix, "--kl-base", "/nonexistent", "-f", os.path.join(tmp, "ppl.txt"), "--ctx", "64"],
     "/nonexistent"),
]
for args, needle in bad_cases:
    r = run(*args)
    check(f"bad input {args[:3]}", r.returncode != 0 and needle in (r.stderr + r.stdout),
          f"rc={r.returncode} stderr={r.stderr.strip()[:300]}")

print(f"cli: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
