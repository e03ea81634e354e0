#!/usr/bin/env python3
"""Drives `moxie template` over every expected render of the chat-template fixtures
(tests/data/chat-templates): outputs byte-identical to Python jinja2, errors fail with a non-zero
exit and the template's own message. Usage: template_cli_test.py MOXIE_BINARY DATA_DIR"""
import json
import os
import subprocess
import sys
import tempfile

MOXIE, DATA = sys.argv[1], sys.argv[2]
root = os.path.join(DATA, "chat-templates")
convs = json.load(open(os.path.join(root, "conversations.json"), encoding="utf-8"))["conversations"]
tmp = tempfile.mkdtemp(prefix="moxie_tmpl_")
files = {}
for name, c in convs.items():
    m = os.path.join(tmp, name + ".messages.json")
    json.dump(c["messages"], open(m, "w", encoding="utf-8"), ensure_ascii=False)
    t = None
    if c.get("tools") is not None:
        t = os.path.join(tmp, name + ".tools.json")
        json.dump(c["tools"], open(t, "w", encoding="utf-8"), ensure_ascii=False)
    files[name] = (m, t)

passed = failed = msg_match = n_err = 0
for fn in sorted(os.listdir(os.path.join(root, "expected"))):
    exp = json.load(open(os.path.join(root, "expected", fn), encoding="utf-8"))
    tmpl = os.path.join(root, "templates", exp["template"])
    for r in exp["renders"]:
        m, t = files[r["conversation"]]
        args = [MOXIE, "template", "--template", tmpl, "--messages", m,
                "--now", exp["strftime_now_fixed"]]
        if t:
            args += ["--tools", t]
        if r["add_generation_prompt"]:
            args.append("--add-generation-prompt")
        if r.get("continue_final_message"):
            args.append("--continue-final-message")
        for k, v in exp["special_tokens"].items():
            if v is not None:
                args += ["--special", f"{k}={v}"]
        for k, v in r["kwargs"].items():
            args += ["--var", f"{k}={json.dumps(v)}"]
        p = subprocess.run(args, capture_output=True, timeout=60)
        label = f"{exp['template']} {r['conversation']} gen={r['add_generation_prompt']} {r['kwargs']}"
        if r["ok"]:
            good = p.returncode == 0 and p.stdout == r["output"].encode("utf-8")
        else:
            n_err += 1
            good = p.returncode != 0 and p.stdout == b""
            msg_match += r["error"]["message"] in p.stderr.decode("utf-8", "replace")
        if good:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {label}: rc={p.returncode} stderr={p.stderr.decode()[:200]}")
print(f"template errors with the template's own message: {msg_match}/{n_err}")
print(f"template: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
