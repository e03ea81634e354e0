#!/usr/bin/env python3
"""The quantized kernels keep their software prefetches of the weight streams.

GCC 12 once deleted every call to a prefetch-only helper (its IPA pure-const pass treats
__builtin_prefetch as free of side effects), which silently cost the multi-token and K-quant
kernels 10-50 % of their streaming rate on Intel. This test disassembles the kernel library and
requires prefetch instructions in each quantized-kernel object.

usage: kernel_objects_test.py libmoxie_kernels.a
"""
import re
import shutil
import subprocess
import sys

# object -> the fewest prefetcht0 instructions it must contain (each has many tile variants
# with several prefetches; one surviving path would not be enough).
REQUIRED = {"qmatmul_avx2.cc.o": 50, "qmatmul_avx512.cc.o": 50}


def main() -> int:
    lib = sys.argv[1]
    if shutil.which("objdump") is None:
        print("SKIP: objdump not found")
        return 0
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], check=True,
                         capture_output=True, text=True).stdout
    counts, member = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\S+\.o):\s+file format", line)
        if m:
            member = m.group(1)
            counts.setdefault(member, 0)
        elif member is not None and "prefetcht0" in line:
            counts[member] += 1
    failed = False
    for obj, need in REQUIRED.items():
        if obj not in counts:
            print(f"SKIP {obj}: not in {lib} (no such ISA in this build)")
            continue
        ok = counts[obj] >= need
        failed |= not ok
        print(f"{'ok' if ok else 'FAIL'} {obj}: {counts[obj]} prefetcht0 (need >= {need})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
