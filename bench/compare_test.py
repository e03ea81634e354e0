#!/usr/bin/env python3
"""bench/compare.py against stand-in peers: a real `moxie bench` on a tiny synthesized model, and
fake llama-bench / llama-batched-bench scripts that log their flags and print what the real tools
print (llama-bench -o json rows; llama-batched-bench's table). Checks the table's figures and
ratios, that --ik-rtr runs ik_llama.cpp a second time with -rtr (and only that run), and the
errors for a missing peer binary and --ik-rtr without a build folder.

    compare_test.py MOXIE_BINARY
"""
import os
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

FAKE_BENCH = r'''#!/usr/bin/env python3
import json, os, sys
a = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("bench " + " ".join(sys.argv) + "\n")
rtr = "-rtr" in a and a[a.index("-rtr") + 1] == "1"
p, n = int(a[a.index("-p") + 1]), int(a[a.index("-n") + 1])
pp, tg = (PP_RTR, TG_RTR) if rtr else (PP, TG)
print("some log line on stdout before the json")
print(json.dumps([{"n_prompt": p, "n_gen": 0, "avg_ts": pp}, {"n_prompt": 0, "n_gen": n, "avg_ts": tg}]))
'''

FAKE_BATCHED = r'''#!/usr/bin/env python3
import os, sys
a = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("batched " + " ".join(sys.argv) + "\n")
rtr = "-rtr" in a
print("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |")
print("|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|")
for b in a[a.index("-npl") + 1].split(","):
    s_tg = (B_RTR if rtr else B) * int(b)
    cells = ["16", "4", b, "100", "0.100", "160.00", "1.000", f"{s_tg:.2f}", "1.100", "100.00"]
    print("| " + " | ".join(cells) + " |")
'''


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def make_peer(root, name, pp, tg, b, pp_rtr, tg_rtr, b_rtr):
    os.makedirs(os.path.join(root, name, "bin"))
    vals = {"PP_RTR": pp_rtr, "TG_RTR": tg_rtr, "B_RTR": b_rtr, "PP": pp, "TG": tg, "B": b}
    bench, batched = FAKE_BENCH, FAKE_BATCHED
    for k, v in vals.items():
        bench = bench.replace(k, repr(float(v)))
        batched = batched.replace(k, repr(float(v)))
    write_exec(os.path.join(root, name, "bin", "llama-bench"), bench)
    write_exec(os.path.join(root, name, "bin", "llama-batched-bench"), batched)
    return os.path.join(root, name)


def table_row(out, label):
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{out}")


def main():
    moxie = os.path.abspath(sys.argv[1])
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="moxie_compare_test_") as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([moxie, "synth", "--shape", "tiny", "--type", "q8_0", "-o", model, "--no-progress"],
                       check=True, capture_output=True)
        ik = make_peer(d, "ik", pp=10.0, tg=5.0, b=4.0, pp_rtr=20.0, tg_rtr=8.0, b_rtr=6.0)
        llama = make_peer(d, "llama", pp=2.0, tg=1.0, b=1.0, pp_rtr=99, tg_rtr=99, b_rtr=99)
        log = os.path.join(d, "peers.log")
        env = dict(os.environ, FAKE_LOG=log)
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--model", model, "--moxie", moxie,
               "--ik-llama-cpp", ik, "--ik-rtr", "--llama-cpp", llama, "-p", "16", "-n", "4", "-r", "1",
               "-b", "1,2", "--rounds", "2", "--json", os.path.join(d, "out.json")]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        check(r.returncode == 0, f"compare failed ({r.returncode}): {r.stderr[-2000:]}")
        out = r.stdout
        header = table_row(out, "test")
        check(header[1:4] == ["moxie", "ik_llama.cpp", "ik_llama.cpp -rtr"], f"columns {header}")
        pp = table_row(out, "pp16")
        moxie_pp = float(pp[1])
        check(moxie_pp > 0, f"moxie prefill {pp}")
        check(pp[2] == "10.00" and pp[3] == "20.00" and pp[4] == "2.00", f"peer prefill cells {pp}")
        for col, peer in ((5, 10.0), (6, 20.0), (7, 2.0)):  # moxie_pp is rounded to 2 decimals
            ratio = float(pp[col].rstrip("x")) if pp[col].endswith("x") else -1
            check(abs(ratio - moxie_pp / peer) <= 0.006 / peer + 0.006,
                  f"ratio column {col}: {pp[col]} for {moxie_pp} / {peer}")
        tg = table_row(out, "tg4")
        check(tg[2:5] == ["5.00", "8.00", "1.00"], f"decode cells {tg}")
        b2 = table_row(out, "tg4 x 2 seqs, identical (aggregate)")
        check(b2[2:5] == ["8.00", "12.00", "2.00"], f"batched cells {b2}")
        lines = open(log).read().splitlines()
        # 2 rounds x (ik, ik -rtr, llama.cpp) x (llama-bench, llama-batched-bench)
        check(len(lines) == 12, f"{len(lines)} peer runs: {lines}")
        ik_runs = [x for x in lines if ik in x]
        rtr_bench = [x for x in ik_runs if x.startswith("bench") and " -rtr 1" in x]
        rtr_batched = [x for x in ik_runs if x.startswith("batched") and x.endswith(" -rtr")]
        check(len(rtr_bench) == 2 and len(rtr_batched) == 2, f"ik -rtr runs: {ik_runs}")
        check(sum("-rtr" in x for x in ik_runs) == 4, f"-rtr on a default run: {ik_runs}")
        check(not any("-rtr" in x for x in lines if llama in x), "-rtr passed to llama.cpp")

        r = subprocess.run([sys.executable, os.path.join(HERE, "compare.py"), "--model", model, "--ik-rtr"],
                           capture_output=True, text=True)
        check(r.returncode != 0 and "--ik-rtr needs --ik-llama-cpp" in r.stderr, f"--ik-rtr alone: {r.stderr}")
        r = subprocess.run([sys.executable, os.path.join(HERE, "compare.py"), "--model", model, "--moxie", moxie,
                            "--ik-llama-cpp", d, "-p", "16", "-n", "4", "-r", "1", "-b", "1", "--rounds", "1"],
                           capture_output=True, text=True, timeout=600)
        check(r.returncode != 0 and "llama-bench not found" in r.stderr, f"missing binary: {r.stderr[-500:]}")
    for f in failures:
        print("FAIL:", f)
    print(f"compare_test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
