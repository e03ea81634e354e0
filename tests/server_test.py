#!/usr/bin/env python3
"""End-to-end tests of `moxie serve` over real HTTP on loopback (standard library only).

Usage: server_test.py MOXIE_BINARY TEST_DATA_DIR DEMO_MODEL_DIR [--soak SECONDS]

Starts the real server on a free port with the demo model (and a random-weight fixture model),
then checks: routes and response shapes, greedy output equal to `moxie run`, 16 concurrent
streaming clients with outputs equal to the single-client ones, error handling (malformed JSON,
wrong types, body over the limit, API key, unknown route, full queue), a client that disconnects
mid-stream or while waiting for a non-streamed answer (slot freed, seen in /metrics), a client that never reads (others unaffected), and a
bounded load loop with flat RSS.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

MOXIE, DATA, DEMO = sys.argv[1], sys.argv[2], sys.argv[3]
SOAK = 20.0
if "--soak" in sys.argv:
    SOAK = float(sys.argv[sys.argv.index("--soak") + 1])
# Under ASan the allocator's quarantine keeps freed memory resident (up to 256 MiB), so RSS says
# nothing about leaks there; LeakSanitizer checks them instead when the server exits (exit code 0
# is required by Server.stop).
SANITIZED = "--sanitized" in sys.argv
FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg, flush=True)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([MOXIE, "serve", "--port", "0", "-t", "2", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError("server did not start: " + line + rest)
        self.port = int(m.group(1))
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode("utf-8")
        c.close()
        return r.status, r.getheaders(), text

    def post(self, path, body, **kw):
        status, headers, text = self.request("POST", path, body, **kw)
        try:
            return status, json.loads(text), dict(headers)
        except ValueError:
            return status, text, dict(headers)

    def stream(self, path, body, headers=None):
        """Returns (status, list of parsed data chunks, saw_done)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps(body), headers=h)
        r = c.getresponse()
        chunks, done = [], False
        if r.status != 200:
            return r.status, json.loads(r.read()), False
        buf = b""
        while True:
            piece = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not piece:
                break
            buf += piece
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:].decode("utf-8")
                    if payload == "[DONE]":
                        done = True
                    else:
                        chunks.append(json.loads(payload))
        c.close()
        return r.status, chunks, done

    def metrics(self, headers=None):
        _, _, text = self.request("GET", "/metrics", headers=headers)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -9
        check(rc == 0, f"server exit code on SIGTERM: {rc}")


def moxie_run(prompt, n):
    out = subprocess.run([MOXIE, "run", "-m", DEMO, "-p", prompt, "-n", str(n), "--temp", "0",
                          "-t", "2", "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["text"]


def cancelled_and_freed(s, base, headers=None, seconds=10.0):
    """Waits until /metrics shows no active slot and more cancelled requests than `base`."""
    stop_at = time.time() + seconds
    while time.time() < stop_at:
        m = s.metrics(headers=headers)
        if m["moxie_slots_active"] == 0 and \
                m["moxie_requests_cancelled_total"] > base["moxie_requests_cancelled_total"]:
            return True
        time.sleep(0.05)
    return False


def stream_text(chunks, chat):
    if chat:
        return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    return "".join(c["choices"][0]["text"] for c in chunks if c["choices"])


def test_routes_and_greedy(s):
    status, _, body = s.request("GET", "/health")
    check(status == 200 and json.loads(body)["status"] == "ok", "GET /health")
    status, _, body = s.request("GET", "/v1/models")
    models = json.loads(body)
    check(status == 200 and models["object"] == "list" and models["data"][0]["id"] == "demo",
          f"GET /v1/models: {body}")
    status, _, body = s.request("GET", "/v1/models/demo")
    check(status == 200 and json.loads(body)["id"] == "demo", f"GET /v1/models/demo: {body}")
    status, _, body = s.request("GET", "/v1/models/other")
    check(status == 404 and json.loads(body)["error"]["code"] == "model_not_found",
          f"GET /v1/models/other: {status} {body}")
    status, headers, _ = s.request("OPTIONS", "/v1/chat/completions",
                                   headers={"Origin": "http://ui.example",
                                            "Access-Control-Request-Method": "POST"})
    h = {k.lower(): v for k, v in headers}
    check(status == 204 and h.get("access-control-allow-origin") == "*" and
          "Authorization" in h.get("access-control-allow-headers", ""), f"CORS preflight: {status} {h}")
    # Completions, greedy: the same text as `moxie run` for the same prompt.
    for prompt in ["The jury said", "It was a cold morning and"]:
        status, r, _ = s.post("/v1/completions", {"model": "demo", "prompt": prompt,
                                                  "max_tokens": 24, "temperature": 0})
        check(status == 200, f"completions status {status}: {r}")
        want = moxie_run(prompt, 24)
        check(r["choices"][0]["text"] == want,
              f"completions greedy text {r['choices'][0]['text']!r} != moxie run {want!r}")
        check(r["object"] == "text_completion" and r["usage"]["completion_tokens"] <= 24,
              f"completions shape: {r}")
        check(r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] +
              r["usage"]["completion_tokens"], "usage adds up")
        # Streamed: the same text in pieces.
        status, chunks, done = s.stream("/v1/completions", {"prompt": prompt, "max_tokens": 24,
                                                            "temperature": 0, "stream": True})
        check(status == 200 and done, "completions stream ends with [DONE]")
        check(stream_text(chunks, False) == want, "completions stream text == moxie run")
    # Chat, non-stream and stream agree.
    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Tell me about the jury."}]
    status, r, _ = s.post("/v1/chat/completions", {"messages": msgs, "max_tokens": 20,
                                                   "temperature": 0})
    check(status == 200 and r["object"] == "chat.completion", f"chat: {status} {r}")
    text = r["choices"][0]["message"]["content"]
    check(r["choices"][0]["message"]["role"] == "assistant", "chat role")
    check(r["choices"][0]["finish_reason"] in ("stop", "length"), "chat finish_reason")
    status, chunks, done = s.stream("/v1/chat/completions",
                                    {"messages": msgs, "max_tokens": 20, "temperature": 0,
                                     "stream": True, "stream_options": {"include_usage": True}})
    check(status == 200 and done, "chat stream [DONE]")
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has the role")
    check(stream_text(chunks, True) == text, "chat stream text == non-stream text")
    check(chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] ==
          r["usage"]["completion_tokens"], f"include_usage chunk: {chunks[-1]}")
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    check(len(finals) == 1, "one chunk carries finish_reason")
    # Logprobs.
    status, r, _ = s.post("/v1/chat/completions", {"messages": msgs, "max_tokens": 5,
                                                   "temperature": 0, "logprobs": True,
                                                   "top_logprobs": 3})
    lp = r["choices"][0]["logprobs"]["content"]
    check(len(lp) == r["usage"]["completion_tokens"] and all(len(t["top_logprobs"]) == 3
                                                              for t in lp), "chat logprobs")
    check(all(t["logprob"] <= 0 and t["token"] == t["top_logprobs"][0]["token"] for t in lp),
          "greedy token is the top logprob")
    # Stop strings are cut and finish with "stop".
    full = moxie_run("The jury said", 30)
    stop = full[len(full) // 2: len(full) // 2 + 3]
    status, r, _ = s.post("/v1/completions", {"prompt": "The jury said", "max_tokens": 30,
                                              "temperature": 0, "stop": [stop]})
    check(r["choices"][0]["text"] == full[:full.find(stop)] and
          r["choices"][0]["finish_reason"] == "stop", f"stop string {stop!r}: {r}")
    # Same seed, same sampled text.
    body = {"prompt": "The jury said", "max_tokens": 16, "temperature": 1.0, "seed": 42}
    a = s.post("/v1/completions", body)[1]["choices"][0]["text"]
    b = s.post("/v1/completions", body)[1]["choices"][0]["text"]
    check(a == b, "seeded sampling is reproducible")


def test_concurrent(s):
    prompts = [f"Story number {i}: the {w}" for i, w in
               enumerate(["jury", "city", "river", "house", "war", "music", "law", "church",
                          "school", "road", "army", "farm", "court", "press", "bank", "train"])]
    single = []
    for p in prompts:
        _, r, _ = s.post("/v1/completions", {"prompt": p, "max_tokens": 24, "temperature": 0})
        single.append(r["choices"][0]["text"])
    results = [None] * len(prompts)

    def client(i):
        st, chunks, done = s.stream("/v1/completions", {"prompt": prompts[i], "max_tokens": 24,
                                                        "temperature": 0, "stream": True})
        results[i] = (st, stream_text(chunks, False), done)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i, r in enumerate(results):
        check(r is not None and r[0] == 200 and r[2], f"concurrent client {i} finished: {r}")
        if r:
            check(r[1] == single[i], f"concurrent client {i}: {r[1]!r} != single {single[i]!r}")
    m = s.metrics()
    batched = m['moxie_batch_tokens_count'] - m['moxie_batch_tokens_bucket{le="1"}']
    check(batched > 0, "steps with several tokens happened (requests were batched)")


def test_errors(s):
    st, r, _ = s.post("/v1/chat/completions", None, raw="{not json")
    check(st == 400 and "malformed JSON" in r["error"]["message"], f"malformed JSON: {st} {r}")
    # Deep nesting (a stack-overflow attempt on the JSON tree) and an out-of-range number: 400s,
    # and the server keeps serving (the next requests below get answers).
    st, r, _ = s.post("/v1/chat/completions", None, raw='{"messages": ' + "[" * 100000 + "]" * 100000 + "}")
    check(st == 400 and "nested deeper" in r["error"]["message"], f"deep nesting: {st} {r}")
    # An object of 200 000 members (quadratic to insert into the order-keeping DOM: 37 s of a core
    # before the limit) is refused at once.
    wide = '{"prompt": "x", "max_tokens": 1, "logit_bias": {' + ",".join(f'"{i}": 1' for i in range(200000)) + "}}"
    t0 = time.time()
    st, r, _ = s.post("/v1/completions", None, raw=wide)
    check(st == 400 and "more than 16384 members" in r["error"]["message"] and time.time() - t0 < 5,
          f"object with too many members: {st} {r} {time.time() - t0:.1f} s")
    for lb, why in (([1], "an array"), ({"x": 1}, "a key that is no id"), ({"1": 101}, "a bias over 100"),
                    ({"99999999": 1}, "an id beyond the vocabulary"), ({"1": "a"}, "a string bias")):
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1, "logit_bias": lb})
        check(st == 400 and r["error"]["param"] == "logit_bias", f"logit_bias with {why}: {st} {r}")
    # +100 forces a token: the greedy answer is that token, every time (two ids, two answers).
    forced = []
    for tid in ("300", "301"):
        st, r, _ = s.post("/v1/completions", {"prompt": "The jury", "max_tokens": 4, "temperature": 0,
                                              "ignore_eos": True, "logprobs": 1, "logit_bias": {tid: 100}})
        toks = r["choices"][0]["logprobs"]["tokens"] if st == 200 else []
        check(st == 200 and len(toks) == 4 and len(set(toks)) == 1, f"logit_bias forces token {tid}: {st} {r}")
        forced.append(toks[:1])
    check(forced[0] != forced[1], f"different forced ids give different tokens: {forced}")
    st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_completion_tokens": 3, "max_tokens": -5})
    check(st == 400 and r["error"]["param"] == "max_tokens", f"max_tokens checked beside max_completion_tokens: {r}")
    st, r, _ = s.post("/v1/completions", None, raw='{"prompt": "x", "temperature": 1e400}')
    check(st == 400 and "error" in r, f"number out of range: {st} {r}")
    st, r, _ = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                               "max_tokens": "many"})
    check(st == 400 and r["error"]["param"] == "max_tokens", f"wrong type names field: {r}")
    st, r, _ = s.post("/v1/completions", {"prompt": 12})
    check(st == 400 and r["error"]["param"] == "prompt", f"prompt type: {r}")
    st, r, _ = s.post("/v1/completions", {"prompt": "x", "temperature": 9})
    check(st == 400 and r["error"]["param"] == "temperature", f"temperature range: {r}")
    st, r, _ = s.post("/v1/completions", None, raw="x" * (5 << 20))
    check(st == 413 and "error" in r, f"body over the limit: {st}")
    st, _, body = s.request("GET", "/v1/nothing")
    check(st == 404 and "error" in json.loads(body), f"unknown route: {st}")
    st, r, _ = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                               "response_format": {"type": "json_schema"}})
    check(st == 400 and r["error"]["param"] == "response_format", f"response_format: {r}")
    st, r, _ = s.post("/v1/completions", {"prompt": "word " * 2000})
    check(st == 400 and r["error"]["code"] == "context_length_exceeded", f"too long: {r}")
    # The body limit (4 MiB by default) holds for what arrives, not only for Content-Length: a
    # gzip body that inflates past it and a chunked one that grows past it get 413.
    import gzip
    big = json.dumps({"prompt": "x", "max_tokens": 1, "pad": "a" * (6 << 20)}).encode()
    st, r, _ = s.post("/v1/completions", None, raw=gzip.compress(big, 9),
                      headers={"Content-Encoding": "gzip"})
    check(st == 413 and "error" in r, f"gzip body inflating past the limit: {st} {r}")
    small = json.dumps({"prompt": "x", "max_tokens": 1}).encode()
    st, r, _ = s.post("/v1/completions", None, raw=gzip.compress(small), headers={"Content-Encoding": "gzip"})
    check(st == 200, f"gzip body under the limit: {st} {r}")

    def chunked(body, piece=1 << 16):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(0, len(body), piece):
                part = body[i:i + piece]
                sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the whole body went out
        got = b""
        while True:
            try:
                piece_in = sock.recv(65536)
            except OSError:
                break
            if not piece_in:
                break
            got += piece_in
            if b"\r\n\r\n" in got and b'"}' in got.split(b"\r\n\r\n", 1)[1]:
                break
        sock.close()
        return got
    got = chunked(big)
    check(got.startswith(b"HTTP/1.1 413"), f"chunked body over the limit: {got[:120]!r}")
    got = chunked(small, 7)
    check(got.startswith(b"HTTP/1.1 200"), f"chunked body under the limit: {got[:120]!r}")
    # A POST without a body says so.
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    c.putrequest("POST", "/v1/completions")
    c.endheaders()
    resp = c.getresponse()
    r = json.loads(resp.read())
    c.close()
    check(resp.status == 400 and "no body" in r["error"]["message"], f"POST without a body: {resp.status} {r}")
    # A known route with the wrong method: 405 with Allow.
    st, h, body = s.request("GET", "/v1/chat/completions")
    check(st == 405 and dict(h).get("Allow", "").startswith("POST") and "error" in json.loads(body),
          f"wrong method: {st} {h}")
    # The CORS preflight allows the headers it is asked for (the openai SDKs' X-Stainless-*).
    st, h, _ = s.request("OPTIONS", "/v1/chat/completions",
                         headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                                  "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os"})
    check(st == 204 and "x-stainless-os" in dict(h).get("Access-Control-Allow-Headers", ""),
          f"CORS preflight headers: {h}")
    # An assistant turn that only called tools has null content: rendered as "".
    st, r, _ = s.post("/v1/chat/completions", {"max_tokens": 2, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "user", "content": "thanks"}]})
    check(st == 200, f"null assistant content with tool_calls: {st} {r}")
    # A temperature too small to invert is greedy (not the least likely token).
    greedy = s.post("/v1/completions", {"prompt": "The jury said", "max_tokens": 6, "temperature": 0})[1]
    st, r, _ = s.post("/v1/completions", {"prompt": "The jury said", "max_tokens": 6, "temperature": 1e-45,
                                          "seed": 3})
    check(st == 200 and r["choices"][0]["text"] == greedy["choices"][0]["text"],
          f"tiny temperature is greedy: {r} vs {greedy}")
    # echo + logprobs scores the prompt too (lm-evaluation-harness's loglikelihood): one entry per
    # prompt and generated token, the first null, offsets from 0; streamed the same.
    body = {"prompt": "The jury said that", "max_tokens": 2, "temperature": 0, "logprobs": 1, "echo": True}
    st, r, _ = s.post("/v1/completions", body)
    lp = r["choices"][0]["logprobs"] if st == 200 else {}
    n = r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] if st == 200 else -1
    check(st == 200 and len(lp["token_logprobs"]) == n and lp["token_logprobs"][0] is None
          and all(x is not None and x <= 0 for x in lp["token_logprobs"][1:]) and lp["text_offset"][0] == 0
          and "".join(lp["tokens"]) == r["choices"][0]["text"], f"echo + logprobs: {r}")
    st, chunks, done = s.stream("/v1/completions", dict(body, stream=True))
    streamed = [x for c in chunks for x in ((c["choices"][0].get("logprobs") or {}).get("token_logprobs") or [])]
    check(st == 200 and done and streamed == lp.get("token_logprobs"), f"streamed echo + logprobs: {chunks}")
    # include_usage: every chunk carries "usage" (null until the last).
    st, chunks, done = s.stream("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
        "stream_options": {"include_usage": True}})
    check(st == 200 and done and all("usage" in c for c in chunks) and chunks[-1]["usage"] is not None
          and all(c["usage"] is None for c in chunks[:-1]), f"include_usage on every chunk: {chunks}")


def test_disconnect_and_slow_client(s):
    base = s.metrics()
    # A client that reads one chunk and hangs up: its request is cancelled, its slot freed.
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    body = json.dumps({"prompt": "The jury said", "max_tokens": 400, "temperature": 1.0,
                       "stream": True, "seed": 1, "ignore_eos": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = sock.recv(4096)
    check(b"200" in got.split(b"\r\n")[0], "stream started")
    sock.close()
    check(cancelled_and_freed(s, base), "disconnected client's slot is freed and counted as cancelled")
    # A client that never reads its stream does not block the others.
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    body = json.dumps({"prompt": "The jury said", "max_tokens": 400, "temperature": 1.0,
                       "stream": True, "seed": 2}).encode()
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    t0 = time.time()
    for i in range(4):
        st, r, _ = s.post("/v1/completions", {"prompt": f"Other {i}", "max_tokens": 16,
                                              "temperature": 0}, timeout=60)
        check(st == 200, f"request beside a slow client: {st}")
    check(time.time() - t0 < 30, "requests beside a slow client finish promptly")
    slow.close()
    # An HTTP/1.0 client gets its stream without chunked coding (1.0 has none), ended by the close.
    old = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    body = json.dumps({"prompt": "The jury said", "max_tokens": 3, "temperature": 0,
                       "stream": True}).encode()
    old.sendall(b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    raw = b""
    while True:
        d = old.recv(65536)
        if not d:
            break
        raw += d
    old.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    events = [ln[6:] for ln in rest.decode().split("\n") if ln.startswith("data: ")]
    check(b" 200 " in head.split(b"\r\n")[0] and b"chunked" not in head.lower()
          and b"connection: close" in head.lower(), f"HTTP/1.0 stream headers: {head}")
    check(len(events) >= 2 and events[-1] == "[DONE]"
          and all("choices" in json.loads(e) for e in events[:-1]), f"HTTP/1.0 stream body: {rest[:300]}")


def test_api_key_and_queue():
    s = Server("-m", DEMO, "--api-key", "sekrit", "--parallel", "1", "--max-queue", "0",
               "--alias", "demo", "-c", "4096")
    try:
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
        check(st == 401 and r["error"]["type"] == "authentication_error", f"missing key: {st}")
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1},
                          headers={"Authorization": "Bearer wrong"})
        check(st == 401, f"wrong key: {st}")
        st, _, _ = s.request("GET", "/health")
        check(st == 200, "/health needs no key")
        st, _, _ = s.request("GET", "/metrics")
        check(st == 401, "/metrics needs the key")
        st, _, _ = s.request("OPTIONS", "/v1/completions")
        check(st == 204, "CORS preflight needs no key")
        auth = {"Authorization": "Bearer sekrit"}
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2}, headers=auth)
        check(st == 200, f"right key: {st} {r}")
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2},
                          headers={"Authorization": "bearer sekrit"})
        check(st == 200, f"the scheme is case-insensitive: {st} {r}")
        st, r, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2},
                          headers={"Authorization": "Bearer SEKRIT"})
        check(st == 401, f"the key is not: {st} {r}")
        # A client waiting for a whole (non-streamed) answer hangs up: no byte has been sent to
        # it, yet its request is cancelled and its slot freed.
        base = s.metrics(headers=auth)
        gone = socket.create_connection(("127.0.0.1", s.port))
        body = json.dumps({"prompt": "The jury said", "max_tokens": 4000, "temperature": 1.0,
                           "seed": 4, "ignore_eos": True}).encode()
        gone.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer sekrit\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        running = False
        for _ in range(400):
            if s.metrics(headers=auth)["moxie_slots_active"] == 1:
                running = True
                break
            time.sleep(0.05)
        check(running, "non-streaming request is running")
        gone.close()
        check(cancelled_and_freed(s, base, auth),
              "a non-streaming client that hangs up is cancelled and its slot freed")
        # One slot, no queue: a second request while one runs gets 503 with Retry-After. The
        # holder is a long stream (thousands of tokens) that we read from, so it is surely
        # running when the second request arrives; hanging up cancels it.
        holder = socket.create_connection(("127.0.0.1", s.port))
        body = json.dumps({"prompt": "The jury said", "max_tokens": 4000, "temperature": 1.0,
                           "seed": 3, "ignore_eos": True, "stream": True}).encode()
        holder.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Authorization: Bearer sekrit\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        holder.settimeout(60)
        got = b""
        while got.count(b"data: ") < 3:  # the stream is under way
            piece = holder.recv(4096)
            if not piece or not got.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" in got:
                break
            got += piece
        check(got.startswith(b"HTTP/1.1 200"), f"holder stream started: {got[:200]!r}")
        st, r, h = s.post("/v1/completions", {"prompt": "y", "max_tokens": 1}, headers=auth)
        got503 = st == 503 and h.get("Retry-After") == "1" and "error" in r
        holder.close()
        check(got503, "full queue answers 503 with Retry-After")
    finally:
        s.stop()


def test_random_model():
    """A random-weight model emits arbitrary tokens (odd bytes): always 200 and valid UTF-8."""
    s = Server("-m", os.path.join(DATA, "models", "qwen3moe"), "--parallel", "2")
    try:
        # Below OpenAI's completions default of 16 tokens, the cap bounds a request that names
        # no max_tokens; an explicit value over it is refused.
        s2 = Server("-m", os.path.join(DATA, "models", "qwen3moe"), "--max-tokens", "8")
        try:
            st, r, _ = s2.post("/v1/completions", {"prompt": "hello", "temperature": 0})
            check(st == 200 and r["usage"]["completion_tokens"] <= 8, f"default max_tokens under the cap: {st} {r}")
            st, r, _ = s2.post("/v1/completions", {"prompt": "hello", "max_tokens": 9})
            check(st == 400 and r["error"]["param"] == "max_tokens", f"explicit max_tokens over the cap: {st} {r}")
        finally:
            s2.stop()
        for seed in range(4):
            st, r, _ = s.post("/v1/completions", {"prompt": "hello", "max_tokens": 40,
                                                  "temperature": 1.5, "seed": seed,
                                                  "logprobs": 2})
            check(st == 200, f"random model completion: {st} {r}")
            st, chunks, done = s.stream("/v1/completions", {"prompt": "hello", "max_tokens": 40,
                                                            "temperature": 1.5, "seed": seed,
                                                            "stream": True})
            check(st == 200 and done, "random model stream")
    finally:
        s.stop()


def test_soak(s):
    """Bounded load loop: mixed requests for SOAK seconds; no errors, RSS flat."""
    errors = []

    def worker(k, stop_at):
        i = 0
        while time.time() < stop_at:
            i += 1
            body = {"prompt": f"Load {k} {i}", "max_tokens": 8 + (i % 16), "temperature": 0.7,
                    "seed": i}
            if i % 2:
                st, chunks, done = s.stream("/v1/completions", dict(body, stream=True))
                if st != 200 or not done:
                    errors.append((st, chunks))
            else:
                st, r, _ = s.post("/v1/chat/completions", {
                    "messages": [{"role": "user", "content": f"Hi {k} {i}"}],
                    "max_tokens": 8, "seed": i})
                if st != 200:
                    errors.append((st, r))

    worker(99, time.time() + min(3.0, SOAK / 4))  # warm up: caches, thread pools, arenas
    rss0 = s.rss_kib()
    stop_at = time.time() + SOAK
    threads = [threading.Thread(target=worker, args=(k, stop_at)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss1 = s.rss_kib()
    check(not errors, f"load loop errors: {errors[:3]}")
    growth = rss1 - rss0
    print(f"soak {SOAK:.0f} s: RSS {rss0} -> {rss1} KiB", flush=True)
    if SANITIZED:
        print("RSS bound not applied under ASan (quarantine); LeakSanitizer checks leaks at exit",
              flush=True)
    else:
        check(growth < max(16 * 1024, rss0 // 10), f"RSS grew {growth} KiB during the load loop")


def main():
    s = Server("-m", DEMO, "--parallel", "4", "--alias", "demo")
    try:
        for test in (test_routes_and_greedy, test_concurrent, test_errors,
                     test_disconnect_and_slow_client, test_soak):
            print("--", test.__name__, flush=True)
            test(s)
        m = s.metrics()
        check(m["moxie_requests_failed_total"] == 0, "no failed requests")
        check(any(k.startswith("moxie_expert_selections_total") and v > 0 for k, v in m.items()),
              "expert selection counts in /metrics")
    finally:
        s.stop()
    print("-- test_api_key_and_queue", flush=True)
    test_api_key_and_queue()
    print("-- test_random_model", flush=True)
    test_random_model()
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        sys.exit(1)
    print("all server checks passed")


if __name__ == "__main__":
    main()
