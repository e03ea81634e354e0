#!/usr/bin/python3
"""Determinism and sanity test of the demo-model data preparation (no torch needed).

Runs prepare.check_hash (tag stripping + split + the first BPE merges) twice on the two
Brown files in tests/data/demo/ and checks identical outputs plus known properties.
Usage: /usr/bin/python3 tools/train_demo/test_prepare.py [data_dir]
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prepare  # noqa: E402

DEFAULT_DIR = os.path.join(HERE, "..", "..", "tests", "data", "demo")

FAILS = []


def check(cond, msg):
    if not cond:
        FAILS.append(msg)
        print("FAIL:", msg)


def main():
    t0 = time.time()
    d = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DIR
    h1, r1 = prepare.check_hash(d)
    h2, r2 = prepare.check_hash(d)
    print("hash:", h1)
    check(h1 == h2, "hash differs between two runs")
    check(r1["merges"] == r2["merges"] and r1["ids"] == r2["ids"], "outputs differ between runs")
    check(len(r1["merges"]) == 300, "expected 300 merges, got %d" % len(r1["merges"]))

    docs = r1["docs"]
    check(sorted(docs) == ["ca01", "cb01"], "unexpected documents %s" % sorted(docs))
    for name, text in docs.items():
        check(not re.search(r"/(at|nn|np|vbd|vbz|in|jj|cc|rb|nns|cs|dt|to|vb|pps)\b", text),
              "%s: POS tags left" % name)
        check(not re.search(r"[A-Za-z]/[a-z$*+-]+\b", text), "%s: word/tag pattern left" % name)
        check("``" not in text and "''" not in text, "%s: `` or '' left" % name)
        check('"' in text, "%s: no restored quotes" % name)
        check("\t" not in text, "%s: tab left" % name)
        check(not re.search(r" [,.;:?!)]", text), "%s: space before punctuation" % name)
        check(not re.search(r"\( ", text), "%s: space after (" % name)
        check(not re.search(r'(^|\s)" ', text), "%s: space after an opening quote" % name)
        check("\n\n" in text and "\n\n\n" not in text, "%s: paragraphs not kept as single blank lines" % name)
        check(all(c == "\n" or " " <= c <= "~" for c in text), "%s: non printable-ASCII char" % name)
        check(text == text.strip(), "%s: leading/trailing whitespace" % name)
    ca01 = docs["ca01"]
    check(ca01.startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's "
                          "recent primary election produced \"no evidence\" that any irregularities "
                          "took place.\n\nThe jury further said"), "ca01 opening text wrong: %r" % ca01[:200])
    check("\"deserves the praise and thanks of the City of Atlanta\" for the manner" in ca01,
          "closing quote spacing wrong")
    check(docs["cb01"].startswith("Assembly session brought much good\n\nThe General Assembly, which"),
          "cb01 headline paragraph wrong: %r" % docs["cb01"][:80])

    # tag stripping
    check(prepare.strip_tag("1/2/cd") == "1/2", "strip_tag keeps '/' inside words")
    check(prepare.strip_tag("Atlanta's/np$") == "Atlanta's", "strip_tag np$")
    check(prepare.strip_tag("Jury/nn-tl") == "Jury", "strip_tag compound tag")
    check(prepare.detokenize(["``", "Only", "a", "handful", "''", ",", "the", "jury", "said", "."])
          == '"Only a handful", the jury said.', "detokenize quotes")
    check(prepare.detokenize(["(", "see", "below", ")", "it", "is", "n't", "John", "'s", "!"])
          == "(see below) it isn't John's!", "detokenize parens/clitics")

    # split protocol
    names = ["c%02d" % i for i in range(25)]
    sp = prepare.split_documents(names, {n: "x" for n in names})
    check(sp["validation"] == ["c08", "c18"] and sp["test"] == ["c09", "c19"], "split protocol %s" % sp)
    check(r1["split"]["train"] == ["ca01", "cb01"], "2-file split %s" % r1["split"])

    # pre-tokenizer (GPT-2 regex, Python approximation)
    got = prepare.PAT.findall("Hello world's  end 123 ok!!\n\nx_y")
    check(got == ["Hello", " world", "'s", " ", " end", " 123", " ok", "!!", "\n", "\n", "x", "_", "y"],
          "pre-tokenizer split %r" % got)

    # encode/decode round trip with the small BPE
    id_to_tok = r1["id_to_tok"]
    vocab, specials = prepare.build_vocab(id_to_tok)
    enc = prepare.BPEEncoder(vocab, r1["merges"])
    full = list(id_to_tok) + list(specials)
    for name, text in docs.items():
        ids = enc.encode(text)
        check(prepare.decode(ids, full) == text, "%s: decode(encode(text)) != text" % name)
    check(len(r1["ids"]) < sum(len(t) for t in docs.values()), "BPE did not compress")
    check(prepare.bytes_to_unicode()[32] == "\u0120" and prepare.bytes_to_unicode()[10] == "\u010a",
          "GPT-2 byte map")

    dt = time.time() - t0
    print("time %.2fs" % dt)
    check(dt < 20, "too slow: %.1fs" % dt)
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
