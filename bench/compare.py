#!/usr/bin/env python3
"""Side-by-side speed: Moxie vs llama.cpp and/or ik_llama.cpp on the same GGUF, interleaved.

    bench/compare.py --model FILE.gguf [--ik-llama-cpp BUILD_DIR [--ik-rtr]] [--llama-cpp BUILD_DIR]
                     [--moxie build/bin/moxie] [-p 512] [-n 128] [-t 2] [-r 3] [-b 1,4,8]
                     [--rounds 2] [--json out.json]

Each round runs every engine once (the order rotates between rounds, so slow phases of a shared
machine hit every engine): prefill (pp) and decode (tg) through `llama-bench -o json` /
`moxie bench -o json`, and aggregate decode of B sequences through `llama-batched-bench -npl` /
`moxie bench -b --identical-sequences`. llama-batched-bench decodes the same token in every
sequence (all route alike: a step reads one sequence's experts), so Moxie is run on that workload
for the ratios, and once more with distinct random tokens per sequence (a step reads the union of
the experts they chose), a row of its own with the expert-union roofline. With --ik-rtr,
ik_llama.cpp runs a second time as its own column with run-time repacking (`-rtr`: its weights
re-laid out at load into its interleaved _R4/_R8 forms, its fastest CPU kernels; off by default).
The table gives the median over rounds of each engine's own median, the ratios, and Moxie's
roofline figures (its bandwidth probe, bytes per token, expert-union bytes per step).

The peers are not part of Moxie: build them yourself, outside this repository, e.g.
    git clone https://github.com/ikawrakow/ik_llama.cpp && cd ik_llama.cpp
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
    cmake --build build --target llama-bench llama-batched-bench -j
(the same for https://github.com/ggml-org/llama.cpp) and pass the build folders.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def find_bin(build, name):
    for sub in ("bin", "", "build/bin"):
        p = os.path.join(build, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    sys.exit(f"compare: {name} not found under {build} (looked in bin/)")


def run(cmd, timeout):
    # In a scratch folder: some peer builds write their tables to ./llama.log instead of stdout.
    with tempfile.TemporaryDirectory(prefix="moxie_compare_") as d:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=d)
        if r.returncode != 0:
            sys.exit(f"compare: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
        log = os.path.join(d, "llama.log")
        extra = open(log, errors="replace").read() if os.path.exists(log) else ""
    return r.stdout + "\n" + extra


def llama_bench(binp, a, extra=()):
    model = os.path.abspath(a.model)
    out = run([binp, "-m", model, "-p", str(a.p), "-n", str(a.n), "-t", str(a.t), "-r", str(a.r),
               "-o", "json", *extra], a.timeout)
    res = {}
    for row in json.loads(out[out.index("["):out.rindex("]") + 1]):
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            res["pp"] = row["avg_ts"]
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            res["tg"] = row["avg_ts"]
    return res


def batched_bench(binp, a, bs, extra=()):
    ctx = max(bs) * (a.batched_prompt + a.n) + 64
    out = run([binp, "-m", os.path.abspath(a.model), "-c", str(ctx), "-b", "2048", "-ub", "512",
               "-npp", str(a.batched_prompt), "-ntg", str(a.n), "-npl", ",".join(map(str, bs)), "-t", str(a.t),
               *extra], a.timeout)
    res = {}
    for line in out.splitlines():
        line = re.sub(r"^\[\d+\]\s*", "", line.strip())  # llama.log prefixes a timestamp
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 8 and re.fullmatch(r"\d+", cells[2] or "x"):
            res[int(cells[2])] = float(cells[7])  # S_TG t/s: aggregate decode
    return res


def moxie_bench(binp, a, bs, p, extra=()):
    out = run([os.path.abspath(binp), "bench", "-m", os.path.abspath(a.model), "-p", str(p), "-n", str(a.n), "-t", str(a.t), "-r", str(a.r),
               "-b", ",".join(map(str, bs)), "-o", "json", *a.moxie_arg, *extra], a.timeout)
    return json.loads(out[:out.rindex("}") + 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moxie", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin", "moxie"))
    ap.add_argument("--llama-cpp", help="llama.cpp build folder")
    ap.add_argument("--ik-llama-cpp", help="ik_llama.cpp build folder")
    ap.add_argument("--ik-rtr", action="store_true",
                    help="also run ik_llama.cpp with run-time repacking (-rtr), as a column of its own")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-b", default="1,4,8")
    ap.add_argument("--batched-prompt", type=int, default=16,
                    help="prompt tokens per sequence before batched decode (llama-batched-bench -npp)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--moxie-arg", action="append", default=[],
                    help="extra flag for every moxie bench run (repeatable), e.g. --moxie-arg=--bf16-activations")
    a = ap.parse_args()
    if not a.llama_cpp and not a.ik_llama_cpp:
        print("compare: no peer given. Build llama.cpp and/or ik_llama.cpp outside this repository "
              "(see the top of bench/compare.py) and pass --llama-cpp / --ik-llama-cpp BUILD_DIR.",
              file=sys.stderr)
    bs = [int(x) for x in a.b.split(",") if x.strip()]
    bb = [b for b in bs if b > 1]
    if a.ik_rtr and not a.ik_llama_cpp:
        sys.exit("compare: --ik-rtr needs --ik-llama-cpp")
    # (name, build folder, extra llama-bench flags, extra llama-batched-bench flags)
    engines = [("moxie", None, (), ())]
    if a.ik_llama_cpp:
        engines.append(("ik_llama.cpp", a.ik_llama_cpp, (), ()))
        if a.ik_rtr:
            engines.append(("ik_llama.cpp -rtr", a.ik_llama_cpp, ("-rtr", "1"), ("-rtr",)))
    if a.llama_cpp:
        engines.append(("llama.cpp", a.llama_cpp, (), ()))
    figs = {e[0]: {"pp": [], "tg": [], **{f"B{b}": [] for b in bb}} for e in engines}
    figs["moxie"].update({f"B{b} distinct": [] for b in bb})
    ident_last = None
    moxie_last = None
    for rnd in range(a.rounds):
        order = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
        for name, build, bench_extra, batched_extra in order:
            print(f"compare: round {rnd + 1}/{a.rounds}: {name}", file=sys.stderr, flush=True)
            if name == "moxie":
                j = moxie_bench(a.moxie, a, bs, a.p)
                moxie_last = j
                figs[name]["pp"].append(j["prefill_tok_s"])
                figs[name]["tg"].append(j["decode_tok_s"])
                for b in bb:
                    figs[name][f"B{b} distinct"].append(j["batched"][str(b)]["tok_s"])
                if bb:
                    ji = moxie_bench(a.moxie, a, bb, 0, ("--identical-sequences", "--no-bandwidth"))
                    ident_last = ji
                    for b in bb:
                        figs[name][f"B{b}"].append(ji["batched"][str(b)]["tok_s"])
            else:
                r = llama_bench(find_bin(build, "llama-bench"), a, bench_extra)
                figs[name]["pp"].append(r.get("pp", 0))
                figs[name]["tg"].append(r.get("tg", 0))
                if bb:
                    rb = batched_bench(find_bin(build, "llama-batched-bench"), a, bb, batched_extra)
                    for b in bb:
                        figs[name][f"B{b}"].append(rb.get(b, 0))
    med = {n: {k: statistics.median(v) if v else 0 for k, v in f.items()} for n, f in figs.items()}
    j = moxie_last
    roof = {"pp": None, "tg": j["decode_roofline_tok_s"]}
    for b in bb:
        roof[f"B{b} distinct"] = j["batched"][str(b)]["roofline_tok_s"]
        ib = ident_last["batched"][str(b)]
        roof[f"B{b}"] = b * ib.get("bandwidth_gb_s", j["bandwidth_gb_s"]) * 1e9 / ib["bytes_per_step"]
    peers = [e[0] for e in engines if e[0] != "moxie"]
    print(f"\nmodel {a.model} ({j['type']}, {j['weight_bytes'] / 1e9:.2f} GB), {a.t} threads, "
          f"{a.rounds} rounds x {a.r} repetitions; Moxie's probes "
          f"{' / '.join(f'{v:.1f}' for v in j.get('bandwidth_probes_gb_s', [j['bandwidth_gb_s']]))} GB/s "
          f"(each row's share against the probe after its test), "
          f"{j['decode_bytes_per_token'] / 1e9:.3f} GB per decoded token"
          + (f"; moxie flags: {' '.join(a.moxie_arg)}" if a.moxie_arg else "") + "\n")
    cols = ["test", "moxie"] + peers + [f"moxie / {p}" for p in peers] + ["roofline", "moxie share"]
    head = "| " + " | ".join(cols) + " |"
    print(head)
    print("|" + "---|" * len(cols))
    rows = [("pp", f"pp{a.p}"), ("tg", f"tg{a.n}")]
    for b in bb:
        rows += [(f"B{b}", f"tg{a.n} x {b} seqs, identical (aggregate)"),
                 (f"B{b} distinct", f"tg{a.n} x {b} seqs, distinct tokens (aggregate)")]
    for key, label in rows:
        m = med["moxie"][key]
        mine = key.endswith("distinct")  # no peer figure: their tool has no such workload
        cells = [f"{m:.2f}"] + ["-" if mine else f"{med[p][key]:.2f}" for p in peers]
        cells += ["-" if mine or not med[p][key] else f"{m / med[p][key]:.2f}x" for p in peers]
        r = roof.get(key)
        cells += [f"{r:.2f}" if r else "compute-bound", f"{100 * m / r:.0f} %" if r else ""]
        print(f"| {label} | " + " | ".join(cells) + " |")
    # Moxie's read rates (its JSON since 21a3e78): unlike the shares they do not use the probe.
    rates = []
    if "decode_read_gb_s" in j:
        rates.append(f"decode {j['decode_read_gb_s']:.1f} (experts {j['decode_expert_read_gb_s']:.1f})")
    for b in bb:
        jb = j["batched"][str(b)]
        if "read_gb_s" in jb:
            rates.append(f"{b} distinct {jb['read_gb_s']:.1f} (experts {jb['expert_read_gb_s']:.1f})")
    if rates:
        print("\nMoxie's read rates in its last round, GB/s (the bytes the roofline counts over the test's time; "
              "the experts' bytes over the expert phase's): " + "; ".join(rates))
    print("\nper-round figures (tok/s):")
    for n, f in figs.items():
        print(f"  {n}: " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in v) for k, v in f.items()))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"median": med, "rounds": figs, "roofline": roof, "moxie_last": j,
                       "moxie_identical_last": ident_last}, fh, indent=1)


if __name__ == "__main__":
    main()
