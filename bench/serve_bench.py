#!/usr/bin/env python3
"""Serving throughput: B concurrent streams through `moxie serve` vs the engine alone.

For each B it starts B streaming /v1/completions requests at once (same prompt length, fixed
max_tokens, ignore_eos) and measures the aggregate decode rate (the sum of the streams' rates,
each over its own first..last token; they run side by side), time to first token (p50/p99 over all requests) and inter-token latency
(p50/p99 over all gaps). Then it runs `moxie bench -b` on the same model (the engine alone, no
HTTP) for the same B and prints both, the expert-union roofline from `moxie bench`, and the
HTTP overhead (1 - served/engine). With --rounds R the two alternate R times (server, engine,
server, ...; the server is stopped before the engine runs, so only one copy of the model is in
memory), the figures are medians over the rounds, and the overhead is the median of each round's
own overhead (on a host whose speed drifts, served and engine figures taken minutes apart differ
by more than HTTP costs).

Usage:
  bench/serve_bench.py --moxie build/bin/moxie -m MODEL.gguf [-b 1,4,8] [-n 64] [-t 2] [-r 2]
                       [--rounds 1] [--prompt-tokens 16] [-o md|json]
"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def start_server(args, parallel):
    cmd = [args.moxie, "serve", "-m", args.model, "--port", "0", "-t", str(args.threads),
           "--parallel", str(parallel), "-c", str(args.ctx)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not m:
        raise SystemExit("server did not start: " + line + proc.stderr.read())
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, int(m.group(1))


def one_stream(port, prompt, n, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True,
            "stream": True}
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    stamps = []
    buf = b""
    while True:
        piece = r.read1(65536)
        if not piece:
            break
        buf += piece
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev.startswith(b"data: {"):
                j = json.loads(ev[6:])
                if j.get("choices") and j["choices"][0].get("text"):
                    stamps.append(time.perf_counter())
    c.close()
    out.append((t0, stamps))


def run_b(port, b, args, prompts):
    results = []
    threads = [threading.Thread(target=one_stream, args=(port, prompts[i], args.n, results))
               for i in range(b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each stream's decode rate over its own first..last token; the streams start together and
    # generate the same count, so they overlap and their rates add up to the aggregate.
    rate = sum((len(s) - 1) / (s[-1] - s[0]) for _, s in results if len(s) > 1 and s[-1] > s[0])
    ttft = [s[0] - t0 for t0, s in results if s]
    itl = [b2 - a for _, s in results for a, b2 in zip(s, s[1:])]
    return rate, ttft, itl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--moxie", default="build/bin/moxie")
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-b", "--batches", default="1,4,8")
    ap.add_argument("-n", type=int, default=64, help="tokens generated per stream")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--repetitions", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate served and engine-alone runs this many times (medians)")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("-o", "--output", default="md", choices=["md", "json"])
    args = ap.parse_args()
    bs = [int(x) for x in args.batches.split(",")]
    # Prompts of token ids (no tokenizer round trip; distinct per stream).
    prompts = [[(100 + 37 * i + 11 * k) % 900 + 10 for k in range(args.prompt_tokens)]
               for i in range(max(bs))]
    def served_round():
        served = {}
        proc, port = start_server(args, max(bs))
        try:
            run_b(port, 1, argparse.Namespace(n=4), prompts)  # warm-up: page in the weights
            for b in bs:
                rates, ttfts, itls = [], [], []
                for _ in range(args.repetitions):
                    rate, ttft, itl = run_b(port, b, args, prompts)
                    rates.append(rate)
                    ttfts += ttft
                    itls += itl
                served[b] = {"rates": rates, "ttfts": ttfts, "itls": itls}
        finally:
            proc.terminate()
            proc.wait()
        return served

    def engine_round():
        return json.loads(subprocess.run(
            [args.moxie, "bench", "-m", args.model, "-p", "0", "-n", str(args.n), "-t",
             str(args.threads), "-r", str(args.repetitions), "-b", args.batches, "-o", "json"],
            capture_output=True, text=True, check=True).stdout)

    def engine_figs(eng, b):
        if b == 1:  # `moxie bench` reports B = 1 as its decode test
            return {"tok_s": eng.get("decode_tok_s"), "roofline_tok_s": eng.get("decode_roofline_tok_s")}
        return eng["batched"].get(str(b), {})

    rounds = []  # (served, eng) per round
    for _ in range(max(1, args.rounds)):
        sv = served_round()
        rounds.append((sv, engine_round()))
    eng = rounds[-1][1]
    served = {}
    for b in bs:
        rates = [statistics.median(sv[b]["rates"]) for sv, _ in rounds]
        all_rates = [x for sv, _ in rounds for x in sv[b]["rates"]]
        ttfts = [x for sv, _ in rounds for x in sv[b]["ttfts"]]
        itls = [x for sv, _ in rounds for x in sv[b]["itls"]]
        e_rates = [engine_figs(e, b).get("tok_s") or 0 for _, e in rounds]
        roofs = [engine_figs(e, b).get("roofline_tok_s") or 0 for _, e in rounds]
        served[b] = {"tok_s": statistics.median(rates), "tok_s_min": min(all_rates),
                     "tok_s_max": max(all_rates), "ttft_p50_s": percentile(ttfts, 0.5),
                     "ttft_p99_s": percentile(ttfts, 0.99),
                     "itl_p50_s": percentile(itls, 0.5), "itl_p99_s": percentile(itls, 0.99),
                     "engine_tok_s": statistics.median(e_rates),
                     "roofline_tok_s": statistics.median(roofs),
                     "http_overhead": statistics.median(
                         [1 - r / e for r, e in zip(rates, e_rates) if e > 0]) if any(e_rates) else None,
                     "per_round": [{"served_tok_s": r, "engine_tok_s": e} for r, e in zip(rates, e_rates)]}
    rows = []
    for b in bs:
        s = served[b]
        rows.append({"b": b, "served_tok_s": s["tok_s"], "served_min": s["tok_s_min"],
                     "served_max": s["tok_s_max"], "engine_tok_s": s["engine_tok_s"],
                     "roofline_tok_s": s["roofline_tok_s"], "http_overhead": s["http_overhead"],
                     "roofline_share": s["tok_s"] / s["roofline_tok_s"] if s["roofline_tok_s"] else None,
                     "per_round": s["per_round"],
                     **{k: s[k] for k in ("ttft_p50_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s")}})
    if args.output == "json":
        print(json.dumps({"model": args.model, "threads": args.threads, "n": args.n,
                          "bandwidth_gb_s": eng.get("bandwidth_gb_s"), "rows": rows}, indent=1))
        return
    print(f"model {args.model}, {args.threads} threads, {args.n} tokens per stream, "
          f"{len(rounds)} round(s) (medians), bandwidth {eng.get('bandwidth_gb_s', 0):.1f} GB/s")
    print("| B | served tok/s (min-max) | engine alone tok/s | HTTP overhead | roofline tok/s | "
          "served / roofline | TTFT p50 / p99 s | ITL p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['b']} | {r['served_tok_s']:.2f} ({r['served_min']:.2f}-{r['served_max']:.2f}) "
              f"| {r['engine_tok_s']:.2f} | {100 * r['http_overhead']:.1f} % "
              f"| {r['roofline_tok_s']:.2f} | {100 * r['roofline_share']:.0f} % "
              f"| {r['ttft_p50_s']:.2f} / {r['ttft_p99_s']:.2f} "
              f"| {1000 * r['itl_p50_s']:.0f} / {1000 * r['itl_p99_s']:.0f} |")
    if len(rounds) > 1:
        for r in rows:
            print(f"B={r['b']} per round (served / engine tok/s): " +
                  ", ".join(f"{x['served_tok_s']:.2f} / {x['engine_tok_s']:.2f}" for x in r["per_round"]))


if __name__ == "__main__":
    sys.exit(main())
