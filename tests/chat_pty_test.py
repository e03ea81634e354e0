#!/usr/bin/env python3
"""Drives `moxie chat` through a pseudo-terminal: two turns, /reset, Ctrl-D. The first reply must
equal `moxie run` (greedy) on the same rendered prompt. Usage: chat_pty_test.py MOXIE DATA_DIR"""
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

MOXIE, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "models", "qwen3moe")
TEMPLATE = os.path.join(DATA, "chat-templates", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja")
ARGS = ["-n", "12", "--temp", "0", "-t", "2", "--ctx", "256"]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    if not cond:
        print(f"FAIL {name}: {detail}")


def read_until(fd, marker, timeout=60):
    buf = b""
    end = time.time() + timeout
    while time.time() < end and marker not in buf:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


pid, fd = pty.fork()
if pid == 0:
    os.execv(MOXIE, [MOXIE, "chat", "-m", MODEL, "--template", TEMPLATE,
                     "--system", "You are terse."] + ARGS)
first = read_until(fd, b"> ")
check("prompt shown on a terminal", first.endswith(b"> "), first)
os.write(fd, b"Hello there\n")
turn1 = read_until(fd, b"> ")
os.write(fd, b"And again?\n")
turn2 = read_until(fd, b"> ")
os.write(fd, b"/reset\n")
reset = read_until(fd, b"> ")
os.write(fd, b"\x04")  # Ctrl-D
rest = read_until(fd, b"\x00", timeout=20)
_, status = os.waitpid(pid, 0)
check("exits 0 on Ctrl-D", os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)


def reply(raw):
    # Terminal echo of the typed line, then the reply, then the next "> ".
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    lines = [ln for ln in text.split("\n") if not ln.startswith("moxie: ")]  # stderr timings
    return "\n".join(lines[1:]).rsplit("> ", 1)[0].rstrip("\n")


r1, r2 = reply(turn1), reply(turn2)
check("turn 1 answered", len(r1.strip()) > 0, turn1)
check("turn 2 answered", len(r2.strip()) > 0, turn2)
check("/reset acknowledged", b"history cleared" in reset, reset)

# The first reply equals greedy `moxie run` on the rendered prompt.
tmp = tempfile.mkdtemp()
msgs = os.path.join(tmp, "m.json")
json.dump([{"role": "system", "content": "You are terse."},
           {"role": "user", "content": "Hello there"}], open(msgs, "w"))
rendered = subprocess.run([MOXIE, "template", "--template", TEMPLATE, "--messages", msgs,
                           "--add-generation-prompt"], capture_output=True, check=True).stdout
pf = os.path.join(tmp, "p.txt")
open(pf, "wb").write(rendered)
out = subprocess.run([MOXIE, "run", "-m", MODEL, "-f", pf, "--no-bos", "--json"] + ARGS,
                     capture_output=True, text=True, check=True).stdout
check("turn 1 equals greedy run", json.loads(out)["text"] == r1,
      f"chat {r1!r} vs run {json.loads(out)['text']!r}")

# Scripted use through a pipe: no prompts on stdout, one reply per line of input.
p = subprocess.run([MOXIE, "chat", "-m", MODEL, "--template", TEMPLATE] + ARGS,
                   input="Hi\nBye\n", capture_output=True, text=True, timeout=120)
check("piped chat exits 0", p.returncode == 0, p.stderr)
check("piped chat prints no prompt", "> " not in p.stdout[:2], p.stdout)
check("piped chat answers both lines", p.stderr.count("moxie: load") == 2, p.stderr)
print(f"chat: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
