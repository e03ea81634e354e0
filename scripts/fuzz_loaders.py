#!/usr/bin/env python3
"""Mutation fuzzer for Moxie's file loaders, driving the real `moxie` CLI.

Copies fixture model folders from tests/data/models/ into a temporary directory, mutates one
file per iteration (GGUF, safetensors, config.json, tokenizer.json, tokenizer_config.json,
model.safetensors.index.json) and runs `moxie info`, `moxie generate` or `moxie tokenize` on it.
Build moxie with -DMOXIE_SANITIZE=ON (ASan + UBSan) to get the most out of it.

Outcome classes:
  accepted  exit 0
  rejected  exit 1 with a 'moxie: error:' line on stderr (a clean rejection)
  FINDING   anything else: a signal, a sanitizer report, a timeout, a non-zero exit without an
            error message, 'terminate called' (uncaught exception)
Each finding is saved under OUT/<n>/ (the mutated file, stderr, stdout, a repro.sh that runs the
exact command against a copy of the model folder in OUT/<n>/model/), and findings are
de-duplicated by the top frames of the sanitizer stack (or by the symptom).

Usage:
  /usr/bin/python3 scripts/fuzz_loaders.py --moxie build-asan/bin/moxie --seed 1 \
      --iters 100000 --time 600 [--targets gguf,safetensors,config,tokenizer] \
      [--models qwen3moe,mixtral,deepseek-v2] [--out /tmp/fuzz_findings] [--timeout 20]

  /usr/bin/python3 scripts/fuzz_loaders.py --moxie build-asan/bin/moxie \
      --sweep mixtral/model.q8_0.gguf --time 600      # field-by-field GGUF sweep via `info`

Targets (comma-separated, optionally weighted as name:weight, e.g. gguf:6,safetensors:2):
  gguf         model.gguf / model.q8_0.gguf -> info / generate / tokenize -m FILE
  safetensors  model.safetensors (or a shard)  -> info / generate -m FOLDER
  config       config.json                     -> info / generate -m FOLDER
  index        model.safetensors.index.json    -> info -m FOLDER (sharded fixture only)
  tokenizer    tokenizer.json / tokenizer_config.json -> tokenize -m FOLDER (and generate)
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "tests", "data", "models")
MODEL_FILES = ["config.json", "model.safetensors", "model.gguf", "model.q8_0.gguf",
               "tokenizer.json", "tokenizer_config.json", "generation_config.json",
               "model.safetensors.index.json", "model-00001-of-00002.safetensors",
               "model-00002-of-00002.safetensors"]
TOKENIZE_TEXT = "some text with \u00fcn\u00efcode and 123"

INT_VALUES_32 = [0, 1, 2, 3, 4, 7, 8, 0x10, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
                 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]
INT_VALUES_64 = INT_VALUES_32 + [0x100000000, 0x7fffffffffffffff, 0x8000000000000000,
                                 0xfffffffffffffffe, 0xffffffffffffffff, 1 << 40, (1 << 40) + 1,
                                 1 << 32, 1 << 62, 1 << 61, 1 << 56]
DEEP_NEST_PROB = 0.25  # share of the 'deep nesting' slot actually used (0 after enough crashes)
BYTE_VALUES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x22, 0x5b, 0x7b, 0x5c]

# --------------------------------------------------------------------------------------------
# GGUF structure map: byte ranges of every header field, so mutations can target them.

GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class GgufMap:
    def __init__(self, data):
        self.fields = []  # (offset, width, kind)
        self.header_end = 0  # end of tensor infos
        self.kv_end = 0
        self.data_start = len(data)
        self.tensor_offsets = []  # offsets of tensor 'offset' fields
        self.ok = False
        try:
            self._parse(data)
            self.ok = True
        except Exception:  # noqa: BLE001 - a corrupt fixture only disables structure-awareness
            pass

    def _parse(self, d):
        p = 0

        cur = {"name": ""}

        def rd(fmt, kind):
            nonlocal p
            n = struct.calcsize(fmt)
            v = struct.unpack_from("<" + fmt, d, p)[0]
            self.fields.append((p, n, kind + ":" + cur["name"] if cur["name"] else kind))
            p += n
            return v

        def rstr(kind):
            nonlocal p
            n = rd("Q", kind + ".len")
            p += n
            if p > len(d):
                raise ValueError("string past the end")

        def rval(t, depth):
            nonlocal p
            if p > len(d):
                raise ValueError("past the end")
            if t in GGUF_SCALAR:
                w = GGUF_SCALAR[t]
                self.fields.append((p, w, "value:" + cur["name"]))
                p += w
            elif t == 8:
                rstr("strval")
            elif t == 9:
                et = rd("I", "arr.type")
                cnt = rd("Q", "arr.count")
                if cnt > len(d) - p:
                    raise ValueError("array too long")
                # Only the first few elements are recorded as fields (arrays can be huge).
                for i in range(cnt):
                    if i < 4 or et != 8:
                        before = len(self.fields)
                        rval(et, depth + 1)
                        if i >= 4:
                            del self.fields[before:]
                    else:
                        n = struct.unpack_from("<Q", d, p)[0]
                        p += 8 + n
                        if p > len(d):
                            raise ValueError("string past the end")
            else:
                raise ValueError("bad type")

        p = 4
        rd("I", "version")
        nt = rd("Q", "n_tensors")
        nkv = rd("Q", "n_kv")
        if nkv > len(d) or nt > len(d):
            raise ValueError("counts too large")
        align = 32
        for _ in range(nkv):
            kstart = p
            klen = struct.unpack_from("<Q", d, p)[0]
            key = d[p + 8:p + 8 + klen].decode("utf-8", "replace")
            cur["name"] = ""
            rstr("key")
            cur["name"] = key
            t = rd("I", "kv.type")
            vstart = p
            rval(t, 0)
            if key == "general.alignment" and t in (4, 5):
                align = struct.unpack_from("<I", d, vstart)[0]
            del kstart
        self.kv_end = p
        for _ in range(nt):
            tlen = struct.unpack_from("<Q", d, p)[0]
            cur["name"] = ""
            rstr("tname")
            cur["name"] = d[p - tlen:p].decode("utf-8", "replace")
            nd = rd("I", "n_dims")
            if nd > 8:
                raise ValueError("n_dims")
            for _ in range(nd):
                rd("Q", "dim")
            rd("I", "ggml_type")
            self.tensor_offsets.append(p)
            rd("Q", "t.offset")
        self.header_end = p
        self.data_start = (p + align - 1) // align * align


# --------------------------------------------------------------------------------------------
# Mutators. Each returns (new_bytes, description).

def le_int(v, width):
    return (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def mut_bitflip(rng, b, lo, hi):
    b = bytearray(b)
    n = rng.choice([1, 1, 1, 2, 4, 8])
    offs = []
    for _ in range(n):
        o = rng.randrange(lo, hi)
        b[o] ^= 1 << rng.randrange(8)
        offs.append(o)
    return bytes(b), "bitflip@%s" % ",".join(map(str, offs))


def mut_byte(rng, b, lo, hi):
    b = bytearray(b)
    o = rng.randrange(lo, hi)
    v = rng.choice(BYTE_VALUES + [rng.randrange(256)])
    b[o] = v
    return bytes(b), "byte@%d=0x%02x" % (o, v)


def mut_int(rng, b, lo, hi, width=None):
    width = width or rng.choice([4, 8])
    if hi - lo < width:
        return mut_byte(rng, b, lo, hi)
    o = rng.randrange(lo, hi - width + 1)
    vals = INT_VALUES_32 if width == 4 else INT_VALUES_64
    v = rng.choice(vals)
    if rng.random() < 0.15:  # small deltas of the existing value
        cur = int.from_bytes(b[o:o + width], "little")
        v = cur + rng.choice([-1, 1, -8, 8, 32, -32, 1 << 20])
    b = b[:o] + le_int(v, width) + b[o + width:]
    return b, "int%d@%d=%#x" % (width * 8, o, v & ((1 << (8 * width)) - 1))


def mut_truncate(rng, b, lo, hi):
    n = rng.randrange(0, hi) if rng.random() < 0.7 else rng.randrange(0, len(b))
    return b[:n], "truncate@%d" % n


def mut_field(rng, b, gmap, kinds=None):
    fields = gmap.fields
    if kinds:
        fields = [f for f in fields if f[2].split(":")[0] in kinds] or gmap.fields
    off, width, kind = rng.choice(fields)
    if width == 1:
        v = rng.choice(BYTE_VALUES + [2, 3, 8, 9, 12, 13, 255])
    elif width in (2, 4):
        v = rng.choice(INT_VALUES_32 + [2, 3, 5, 6, 7, 8, 9, 10, 12, 13, 14, 30, 41, 42])
    else:
        v = rng.choice(INT_VALUES_64)
    if rng.random() < 0.25:
        cur = int.from_bytes(b[off:off + width], "little")
        v = cur + rng.choice([-1, 1, 2, -2, 31, 32, -32, 4096, 1 << 20, 1 << 31])
    b = b[:off] + le_int(v, width) + b[off + width:]
    return b, "field[%s]@%d(w%d)=%#x" % (kind, off, width, v & ((1 << (8 * width)) - 1))


def mutate_gguf(rng, b):
    g = GgufMap(b)
    hend = g.data_start if g.ok else min(len(b), 65536)
    r = rng.random()
    n_muts = rng.choice([1, 1, 1, 2, 3])
    descs = []
    for _ in range(n_muts):
        r = rng.random()
        if g.ok and r < 0.40:
            b, d = mut_field(rng, b, g)
        elif g.ok and r < 0.48:
            b, d = mut_field(rng, b, g, kinds={"t.offset", "dim", "ggml_type", "n_dims"})
        elif r < 0.60:
            b, d = mut_int(rng, b, 0, hend)
        elif r < 0.70:
            b, d = mut_bitflip(rng, b, 0, hend)
        elif r < 0.78:
            b, d = mut_byte(rng, b, 0, hend)
        elif r < 0.86:
            b, d = mut_truncate(rng, b, 0, hend)
            descs.append(d)
            break
        elif r < 0.93:
            b, d = mut_bitflip(rng, b, 0, len(b))
        else:
            b, d = mut_int(rng, b, hend if hend < len(b) - 8 else 0, len(b))
        descs.append(d)
        g = GgufMap(b) if g.ok else g
    return b, ";".join(descs)


# ---- JSON ----------------------------------------------------------------------------------

def random_json_value(rng, depth=0):
    choices = [
        None, True, False, 0, -1, 1, 2, 3, 7, 8, 64, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32,
        2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, 10 ** 30, -(2 ** 63), -(2 ** 63) - 1,
        -(2 ** 31), 1e308, -1e308, 1e-308, 0.5, -0.0, 1.5, 8.0, 1e19, -1e19, 9.223372036854776e18,
        "", "a", "\u0000", "\udcff" if False else "\u00ff", "x" * 5000, "F32", "BF16", "I64",
        "<s>", "null", [], {}, [1], ["a"], [[1, 2], [3]], {"a": 1},
    ]
    v = rng.choice(choices)
    if isinstance(v, list) and depth < 2 and rng.random() < 0.3:
        v = [random_json_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return v


def json_paths(node, path=(), out=None, limit=20000):
    if out is None:
        out = []
    if len(out) >= limit:
        return out
    out.append(path)
    if isinstance(node, dict):
        for k, v in node.items():
            json_paths(v, path + (k,), out, limit)
    elif isinstance(node, list):
        # big lists (vocab, merges): sample a few entries
        idx = range(len(node)) if len(node) <= 16 else sorted(
            set([0, 1, len(node) - 1] + [i * len(node) // 8 for i in range(8)]))
        for i in idx:
            json_paths(node[i], path + (i,), out, limit)
    return out


def get_at(node, path):
    for p in path:
        node = node[p]
    return node


def json_struct_mutation(rng, obj):
    paths = json_paths(obj)
    path = rng.choice(paths)
    if not path:
        r = rng.random()
        if r < 0.3:
            return random_json_value(rng), "root=random"
        return [obj], "root wrapped in array"
    parent = get_at(obj, path[:-1])
    key = path[-1]
    cur = parent[key]
    r = rng.random()
    if r < 0.40:
        v = random_json_value(rng)
        parent[key] = v
        return obj, "set %s=%s" % (list(path), json.dumps(v)[:60])
    if r < 0.50:
        if isinstance(parent, dict):
            del parent[key]
        else:
            del parent[key]
        return obj, "delete %s" % (list(path),)
    if r < 0.58 and isinstance(cur, (int, float)) and not isinstance(cur, bool):
        v = rng.choice([-cur, cur * 1000, cur + 1, cur - 1, cur * 2 ** 32, float(cur), cur / 3,
                        str(cur)])
        parent[key] = v
        return obj, "numeric %s=%s" % (list(path), json.dumps(v)[:60])
    if r < 0.64 and isinstance(cur, str):
        v = rng.choice(["", cur * 50, cur[:len(cur) // 2], cur + "\u00e9\U0001f600", "\ufffd",
                        cur.upper(), " " + cur, cur + cur])
        parent[key] = v
        return obj, "string %s" % (list(path),)
    if r < 0.72 and isinstance(cur, list):
        if cur and rng.random() < 0.5:
            cur.extend(cur[:rng.randrange(1, len(cur) + 1)])
            return obj, "list-dup %s" % (list(path),)
        if cur:
            del cur[rng.randrange(len(cur)):]
            return obj, "list-cut %s" % (list(path),)
        cur.append(random_json_value(rng))
        return obj, "list-append %s" % (list(path),)
    if r < 0.78 and isinstance(cur, dict) and cur:
        k2 = rng.choice(list(cur.keys()))
        del cur[k2]
        return obj, "dict-del %s.%s" % (list(path), k2)
    if r < 0.84:
        if rng.random() >= DEEP_NEST_PROB:  # deep nesting crashes slowly (big ASan report)
            return json_struct_mutation(rng, obj)
        depth = rng.choice([64, 1000, 20000, 100000])
        parent[key] = "NESTED%d" % depth  # expanded textually below
        return obj, "deep-nest(%d) %s" % (depth, list(path))
    # swap with another node's value
    other = rng.choice(paths)
    try:
        parent[key] = json.loads(json.dumps(get_at(obj, other)))
    except Exception:  # noqa: BLE001
        parent[key] = None
    return obj, "copy %s -> %s" % (list(other), list(path))


def dump_json(obj):
    s = json.dumps(obj, ensure_ascii=False)
    # expand deep-nesting placeholders
    def rep(m):
        d = int(m.group(1))
        return "[" * d + "1" + "]" * d
    return re.sub(r'"NESTED(\d+)"', rep, s)


def mutate_json_text(rng, b):
    r = rng.random()
    n = len(b)
    if n == 0:
        return b"{", "empty->{"
    if r < 0.2:
        a = rng.randrange(n)
        l = rng.randrange(1, min(64, n - a) + 1)
        return b[:a] + b[a + l:], "text-delete %d+%d" % (a, l)
    if r < 0.35:
        a = rng.randrange(n)
        l = rng.randrange(1, min(256, n - a) + 1)
        return b[:a + l] + b[a:a + l] + b[a + l:], "text-dup %d+%d" % (a, l)
    if r < 0.5:
        b2, d = mut_byte(rng, b, 0, n)
        return b2, "text-" + d
    if r < 0.6:
        a = rng.randrange(n)
        ins = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\x00", b"\\u", b"\\ud800", b'"',
                          b"[", b"{", b"}", b",", b"-", b"1e999", b"99999999999999999999999"])
        return b[:a] + ins + b[a:], "text-insert %d %r" % (a, ins)
    if r < 0.72:
        # replace a number in the text with an extreme one
        nums = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", b[:200000])]
        if nums:
            s, e = rng.choice(nums)
            v = rng.choice([b"-1", b"0", b"1e308", b"-1e308", b"1e400", b"18446744073709551615",
                            b"18446744073709551616", b"9223372036854775807",
                            b"-9223372036854775808", b"2147483648", b"4294967296", b"0.5",
                            b"1" * 40, b"-0", b"NaN"])
            return b[:s] + v + b[e:], "text-number %d=%s" % (s, v.decode())
    if r < 0.8:
        k = rng.randrange(n)
        return b[:k], "text-truncate %d" % k
    b2, d = mut_bitflip(rng, b, 0, n)
    return b2, "text-" + d


def mutate_json(rng, b):
    if rng.random() < 0.6:
        try:
            obj = json.loads(b.decode("utf-8"))
        except Exception:  # noqa: BLE001
            obj = None
        if obj is not None:
            descs = []
            for _ in range(rng.choice([1, 1, 2, 3])):
                obj, d = json_struct_mutation(rng, obj)
                descs.append(d)
            return dump_json(obj).encode("utf-8"), ";".join(descs)
    return mutate_json_text(rng, b)


# ---- safetensors ---------------------------------------------------------------------------

def mutate_safetensors(rng, b):
    if len(b) < 8:
        return mutate_json_text(rng, b)
    n = struct.unpack_from("<Q", b, 0)[0]
    hdr = b[8:8 + n]
    rest = b[8 + n:]
    r = rng.random()
    if r < 0.45:
        try:
            obj = json.loads(hdr.decode("utf-8"))
        except Exception:  # noqa: BLE001
            obj = None
        if isinstance(obj, dict):
            descs = []
            names = [k for k in obj if k != "__metadata__"]
            for _ in range(rng.choice([1, 1, 2])):
                rr = rng.random()
                if names and rr < 0.6:
                    t = rng.choice(names)
                    e = obj[t]
                    if not isinstance(e, dict):
                        continue
                    f = rng.choice(["dtype", "shape", "data_offsets", "all"])
                    if f == "dtype":
                        e["dtype"] = rng.choice(["F32", "F16", "BF16", "I64", "I32", "U8", "BOOL",
                                                 "F4", "F6_E2M3", "F8_E4M3", "F64", "C64", "U64",
                                                 "f32", "", 7, None])
                    elif f == "shape" and isinstance(e.get("shape"), list):
                        s = e["shape"]
                        op = rng.random()
                        if op < 0.3 and s:
                            s[rng.randrange(len(s))] = rng.choice(
                                [0, 1, -1, 2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1,
                                 2 ** 64, 1.5, "3", None, s[0] * 2 if s else 2])
                        elif op < 0.5:
                            s.append(rng.choice([1, 2, 0]))
                        elif op < 0.7 and s:
                            s.pop()
                        elif op < 0.85 and len(s) >= 2:
                            s.reverse()
                        else:
                            e["shape"] = []
                    elif f == "data_offsets" and isinstance(e.get("data_offsets"), list):
                        o = e["data_offsets"]
                        i = rng.randrange(len(o)) if o else 0
                        if o:
                            o[i] = rng.choice([0, 1, -1, o[i] + 1, o[i] - 1, o[i] + 4,
                                               len(rest), len(rest) + 1, 2 ** 63 - 1, 2 ** 64 - 1,
                                               2 ** 64, 1.0 * o[i]])
                        if rng.random() < 0.1:
                            o.append(0)
                    else:
                        obj[t] = random_json_value(rng)
                    descs.append("st-%s[%s]" % (f, t))
                elif names and rr < 0.7:
                    t = rng.choice(names)
                    del obj[t]
                    descs.append("st-del[%s]" % t)
                else:
                    obj2, d = json_struct_mutation(rng, obj)
                    if isinstance(obj2, dict):
                        obj = obj2
                    descs.append("st-json " + d)
            h2 = dump_json(obj).encode("utf-8")
            if rng.random() < 0.5:
                # keep the original header length (pad with spaces) when it fits
                if len(h2) <= n:
                    h2 = h2 + b" " * (n - len(h2))
            hdr_len = len(h2)
            if rng.random() < 0.1:
                hdr_len += rng.choice([-1, 1, 8, -8])
            return struct.pack("<Q", hdr_len & (2 ** 64 - 1)) + h2 + rest, ";".join(descs)
    if r < 0.6:
        v = rng.choice(INT_VALUES_64 + [n - 1, n + 1, n + 8, len(b) - 8, len(b) - 7, 100_000_000,
                                        100_000_001])
        return struct.pack("<Q", v & (2 ** 64 - 1)) + b[8:], "st-hdrlen=%#x" % v
    if r < 0.8:
        h2, d = mutate_json_text(rng, hdr)
        return struct.pack("<Q", len(h2)) + h2 + rest, "st-hdrtext " + d
    if r < 0.9:
        b2, d = mut_truncate(rng, b, 0, len(b))
        return b2, d
    b2, d = mut_bitflip(rng, b, 0, 8 + n)
    return b2, "st-" + d


# --------------------------------------------------------------------------------------------

def classify(rc, stderr, timed_out):
    if "ERROR: AddressSanitizer" in stderr:
        m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", stderr)
        return "FINDING", "asan:" + (m.group(1) if m else "?")
    if "runtime error:" in stderr or "UndefinedBehaviorSanitizer" in stderr:
        m = re.search(r"runtime error: ([^\n]*)", stderr)
        msg = m.group(1) if m else "?"
        msg = re.sub(r"-?\d+", "N", msg)
        return "FINDING", "ubsan:" + msg[:80]
    if timed_out:
        return "FINDING", "timeout"
    if "terminate called" in stderr:
        m = re.search(r"terminate called[^\n]*\n?\s*what\(\):\s*([^\n]*)", stderr)
        return "FINDING", "terminate:" + (re.sub(r"\d+", "N", m.group(1))[:80] if m else "")
    if rc < 0:
        return "FINDING", "signal:%s" % signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else "signal:%d" % -rc
    if rc == 0:
        return "accepted", ""
    if rc == 1 and "moxie: error:" in stderr:
        return "rejected", ""
    return "FINDING", "exit%d-no-error-msg" % rc if "moxie: error:" not in stderr else "exit%d" % rc


def _short_fn(fn):
    """'ns::f<...>(args) const' -> 'ns::f' (template arguments and parameters removed)."""
    out, depth = [], 0
    for ch in fn:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    s = "".join(out)
    s = s.split("(")[0].strip()
    return s.split(" ")[-1][:80]


def stack_key(stderr, symptom):
    """Symptom + the top two non-sanitizer frames of the first stack + the first frame in the
    project's own sources (a stack overflow's stack is truncated, so it may be absent)."""
    top, project = [], None
    if "stack-overflow" in symptom:  # key on the recursing function: the most frequent frame
        fns = collections.Counter(
            _short_fn(m.group(1)) for m in re.finditer(r"#\d+ 0x[0-9a-f]+ in (.+) \S+\n", stderr))
        for f, _ in fns.most_common(3):
            if "allocat" not in f and "construct" not in f.lower() and "uninit" not in f:
                top = [f + "(recursive)"]
                break
    for line in stderr.splitlines():
        m = re.match(r"\s*#\d+ 0x[0-9a-f]+ in (.+) (\S+)$", line)
        if m:
            fn, loc = m.group(1), m.group(2)
            if "libsanitizer" in loc or "__sanitizer" in fn or "__asan" in fn or "__ubsan" in fn:
                continue
            f = _short_fn(fn)
            if len(top) < 2 and (not top or top[-1] != f) and "stack-overflow" not in symptom:
                top.append(f)
            if project is None and "/work/main/" in loc and "/_deps/" not in loc:
                project = f + "@" + os.path.basename(loc.split(":")[0])
        elif top and not line.strip():
            break
    if not top:
        m = re.search(r"(/work/main/\S+:\d+):\d+: runtime error", stderr)
        if m:
            project = m.group(1)
    return "%s | %s | %s" % (symptom, " > ".join(top), project or "-")


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.moxie = os.path.abspath(args.moxie)
        self.tmp = tempfile.mkdtemp(prefix="moxie_fuzz_")
        self.base = os.path.join(self.tmp, "base")
        self.work = os.path.join(self.tmp, "work")
        self.models = []
        for m in args.models.split(","):
            src = os.path.join(FIXTURES, m)
            if not os.path.isdir(src):
                sys.exit("no fixture folder %s" % src)
            for root in (self.base, self.work):
                dst = os.path.join(root, m)
                os.makedirs(dst)
                for f in MODEL_FILES:
                    if os.path.exists(os.path.join(src, f)):
                        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
            self.models.append(m)
        self.env = dict(os.environ)
        self.env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
        self.env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        self.env.pop("MOXIE_MODEL", None)
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)
        self.n_findings = max([int(d) + 1 for d in os.listdir(self.out) if d.isdigit()] + [0])
        self.counts = collections.defaultdict(collections.Counter)
        self.distinct = collections.OrderedDict()
        self.accepted_info = collections.Counter()
        self.n_stack_overflows = 0
        self.targets = []
        for t in args.targets.split(","):
            name, _, w = t.partition(":")
            self.targets.append((name, float(w or 1)))

    def pick_target(self):
        total = sum(w for _, w in self.targets)
        x = self.rng.random() * total
        for name, w in self.targets:
            x -= w
            if x <= 0:
                return name
        return self.targets[-1][0]

    def plan(self, target):
        """-> (model, file name to mutate, mutator, command args list with {M}=folder)."""
        rng = self.rng
        models = self.models
        if target == "index":
            models = [m for m in self.models
                      if os.path.exists(os.path.join(self.base, m, "model.safetensors.index.json"))]
            if not models:
                target = "config"
                models = self.models
        if target == "gguf":
            models = [m for m in models if os.path.exists(os.path.join(self.base, m, "model.gguf"))]
        model = rng.choice(models)
        d = os.path.join(self.work, model)
        files = os.listdir(d)
        gen = ["generate", "-m", None, "--tokens", "1,2,3", "-n", "2", "--greedy"]
        tok = ["tokenize", "-m", None, TOKENIZE_TEXT]
        info = ["info", "-m", None, "--json"]
        if target == "gguf":
            f = rng.choice([x for x in ("model.gguf", "model.q8_0.gguf") if x in files])
            r = rng.random()
            cmd = info if r < 0.7 else gen if r < 0.85 else tok
            return model, f, mutate_gguf, cmd, os.path.join(d, f)
        if target == "safetensors":
            cands = [x for x in files if x.endswith(".safetensors")]
            if "model.safetensors.index.json" in files:
                cands = [x for x in cands if x.startswith("model-")]
            f = rng.choice(cands)
            cmd = info if rng.random() < 0.8 else gen
            return model, f, mutate_safetensors, cmd, d
        if target == "config":
            cmd = info if rng.random() < 0.75 else gen
            return model, "config.json", mutate_json, cmd, d
        if target == "index":
            return model, "model.safetensors.index.json", mutate_json, info, d
        if target == "tokenizer":
            f = rng.choice(["tokenizer.json", "tokenizer.json", "tokenizer_config.json"])
            cmd = tok if rng.random() < 0.85 else gen
            return model, f, mutate_json, cmd, d
        raise SystemExit("unknown target " + target)

    def run_one(self, target):
        model, fname, mutator, cmd, mpath = self.plan(target)
        src = os.path.join(self.base, model, fname)
        dst = os.path.join(self.work, model, fname)
        with open(src, "rb") as fh:
            orig = fh.read()
        data, desc = mutator(self.rng, orig)
        if data == orig:
            data, desc = mut_bitflip(self.rng, orig, 0, len(orig))
        with open(dst, "wb") as fh:
            fh.write(data)
        argv = [self.moxie] + [mpath if a is None else a for a in cmd]
        t0 = time.time()
        timed_out = False
        try:
            p = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=self.args.timeout, stdin=subprocess.DEVNULL)
            rc, so, se = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, so, se, timed_out = -9, e.stdout or b"", e.stderr or b"", True
        dt = time.time() - t0
        se_s = se.decode("utf-8", "replace")
        outcome, symptom = classify(rc, se_s, timed_out)
        key = "%s/%s" % (target, cmd[0])
        self.counts[key][outcome] += 1
        if outcome == "accepted" and cmd[0] == "info":
            self.accepted_info[(fname, desc.split("@")[0].split("[")[0])] += 1
        if outcome == "FINDING":
            try:
                self.save_finding(model, fname, data, argv, mpath, rc, so, se_s, symptom, desc, dt)
            except Exception:  # noqa: BLE001 - never lose the campaign to a bookkeeping error
                import traceback
                traceback.print_exc()
                print("FINDING (unsaved) %s %s %s rc=%d" % (fname, symptom, desc, rc), flush=True)
            if "stack-overflow" in symptom:
                self.n_stack_overflows += 1
                if self.n_stack_overflows >= self.args.max_stack_overflows:
                    # deep-nesting crashes are known by now and cost ~10 s each: stop making them
                    global DEEP_NEST_PROB
                    DEEP_NEST_PROB = 0.0
        # restore the pristine file
        with open(dst, "wb") as fh:
            fh.write(orig)
        if self.args.verbose:
            print("%-22s %-10s %5.2fs %s %s" % (key, outcome, dt, fname, desc[:100]), flush=True)
        return outcome

    def save_finding(self, model, fname, data, argv, mpath, rc, so, se, symptom, desc, dt):
        key = stack_key(se, symptom)
        if not symptom.startswith(("asan", "ubsan")):
            # no stack: tell hangs/exits apart by file type, command and mutated field
            m = re.search(r"field\[([^\]]*)\]", desc)
            key += " | %s %s %s" % (fname.replace(".q8_0", ""), argv[1], m.group(1) if m else "")
        first = key not in self.distinct
        self.distinct.setdefault(key, []).append(self.n_findings)
        n = self.n_findings
        self.n_findings += 1
        with open(os.path.join(self.out, "findings.jsonl"), "a") as fh:
            fh.write(json.dumps({"n": n, "model": model, "file": fname, "mutation": desc,
                                 "rc": rc, "symptom": symptom, "key": key}) + "\n")
        fd = os.path.join(self.out, str(n))
        os.makedirs(fd, exist_ok=True)
        # a full copy of the model folder with the mutated file, for a self-contained repro
        mdir = os.path.join(fd, "model")
        shutil.copytree(os.path.join(self.base, model), mdir)
        with open(os.path.join(mdir, fname), "wb") as fh:
            fh.write(data)
        with open(os.path.join(fd, fname), "wb") as fh:
            fh.write(data)
        rel = mpath.replace(os.path.join(self.work, model), mdir)
        rargv = [rel if a == mpath else a for a in argv]
        with open(os.path.join(fd, "stderr.txt"), "w") as fh:
            fh.write(se)
        with open(os.path.join(fd, "stdout.txt"), "wb") as fh:
            fh.write(so[:100000])
        quoted = " ".join("'%s'" % a.replace("'", "'\\''") for a in rargv)
        with open(os.path.join(fd, "repro.sh"), "w") as fh:
            fh.write("#!/bin/sh\n# %s\nASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "
                     "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 timeout %d %s\n"
                     % (desc, self.args.timeout, quoted))
        os.chmod(os.path.join(fd, "repro.sh"), 0o755)
        with open(os.path.join(fd, "info.json"), "w") as fh:
            json.dump({"model": model, "file": fname, "mutation": desc, "rc": rc,
                       "symptom": symptom, "dedup_key": key, "seconds": round(dt, 2),
                       "argv": rargv, "first_of_kind": first}, fh, indent=1)
        print("FINDING #%d %s %s [%s] (%s)" % (n, "NEW" if first else "dup", key, desc[:80],
                                                fname), flush=True)

    def sweep(self, spec):
        """Deterministic pass over every GGUF header field of MODEL/FILE: each boundary value,
        one at a time, through `moxie info`. Lists what `info` accepts with exit 0."""
        model, fname = spec.split("/", 1)
        src = os.path.join(self.base, model, fname)
        dst = os.path.join(self.work, model, fname)
        with open(src, "rb") as fh:
            orig = fh.read()
        g = GgufMap(orig)
        accepted = []
        deadline = time.time() + self.args.time
        i = 0
        for off, width, kind in g.fields:
            cur = int.from_bytes(orig[off:off + width], "little")
            if width == 1:
                vals = [0, 1, 2, 0x7f, 0x80, 0xff]
            elif width in (2, 4):
                vals = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, cur + 1, cur - 1, cur * 2]
            else:
                vals = [0, 1, 0x7fffffff, 0xffffffff, 1 << 40, 2 ** 63 - 1, 2 ** 64 - 1, cur + 1,
                        cur - 1, cur * 2]
            for v in dict.fromkeys(x & ((1 << (8 * width)) - 1) for x in vals):
                if v == cur or time.time() > deadline:
                    continue
                data = orig[:off] + le_int(v, width) + orig[off + width:]
                desc = "sweep field[%s]@%d(w%d)=%#x (was %#x)" % (kind, off, width, v, cur)
                with open(dst, "wb") as fh:
                    fh.write(data)
                argv = [self.moxie, "info", "-m", dst, "--json"]
                t0 = time.time()
                timed_out = False
                try:
                    p = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, timeout=self.args.timeout,
                                       stdin=subprocess.DEVNULL)
                    rc, so, se = p.returncode, p.stdout, p.stderr
                except subprocess.TimeoutExpired as e:
                    rc, so, se, timed_out = -9, e.stdout or b"", e.stderr or b"", True
                se_s = se.decode("utf-8", "replace")
                outcome, symptom = classify(rc, se_s, timed_out)
                self.counts["sweep:%s/info" % fname][outcome] += 1
                i += 1
                if outcome == "accepted":
                    accepted.append(desc)
                elif outcome == "FINDING":
                    try:
                        self.save_finding(model, fname, data, argv, dst, rc, so, se_s, symptom,
                                          desc, time.time() - t0)
                    except Exception:  # noqa: BLE001
                        import traceback
                        traceback.print_exc()
        with open(dst, "wb") as fh:
            fh.write(orig)
        shutil.rmtree(self.tmp, ignore_errors=True)
        summary = {"iterations": i,
                   "counts": {k: dict(v) for k, v in sorted(self.counts.items())},
                   "distinct_findings": dict(self.distinct), "accepted": accepted}
        print(json.dumps(summary, indent=1))
        with open(os.path.join(self.out, "sweep-%s-%s.json" % (model, fname)), "w") as fh:
            json.dump(summary, fh, indent=1)

    def run(self):
        if self.args.sweep:
            return self.sweep(self.args.sweep)
        deadline = time.time() + self.args.time
        i = 0
        try:
            while i < self.args.iters and time.time() < deadline:
                self.run_one(self.pick_target())
                i += 1
                if i % 100 == 0:
                    print("[%d iters, %.0fs] %s" % (i, self.args.time - (deadline - time.time()),
                                                    dict((k, dict(v)) for k, v in self.counts.items())),
                          flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        summary = {"iterations": i,
                   "counts": {k: dict(v) for k, v in sorted(self.counts.items())},
                   "distinct_findings": {k: v for k, v in self.distinct.items()},
                   "accepted_info_by_mutation": {"%s %s" % k: v for k, v in
                                                 self.accepted_info.most_common(40)}}
        print(json.dumps(summary, indent=1))
        with open(os.path.join(self.out, "summary-seed%d.json" % self.args.seed), "w") as fh:
            json.dump(summary, fh, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moxie", required=True, help="path to the moxie binary (ASan+UBSan build)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iters", type=int, default=1000000)
    ap.add_argument("--time", type=float, default=300, help="time budget in seconds")
    ap.add_argument("--targets", default="gguf:6,safetensors:2,config:1,tokenizer:1,index:0.5")
    ap.add_argument("--models", default="qwen3moe,mixtral,deepseek-v2,qwen2moe-bf16-sharded")
    ap.add_argument("--out", default="/tmp/fuzz_findings")
    ap.add_argument("--timeout", type=float, default=20, help="per-run timeout in seconds")
    ap.add_argument("--max-stack-overflows", type=int, default=4,
                    help="stop generating deeply nested JSON after this many stack overflows")
    ap.add_argument("--sweep", metavar="MODEL/FILE",
                    help="instead of fuzzing: set every GGUF header field of MODEL/FILE (e.g. "
                         "mixtral/model.q8_0.gguf) to boundary values, one at a time, via `info`")
    ap.add_argument("-v", "--verbose", action="store_true")
    Fuzzer(ap.parse_args()).run()


if __name__ == "__main__":
    main()
