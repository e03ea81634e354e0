#!/usr/bin/env bash
# The demo: describe a bundled MoE model, generate from it, and check its logits against the
# Hugging Face reference shipped beside it. (A trained demo model replaces this tiny random-weight
# fixture in a later release; see the README.)
set -euo pipefail
cd "$(dirname "$0")/.."
M=tests/data/models/qwen3moe
PROMPT=$(/usr/bin/python3 -c "import json;print(','.join(map(str,json.load(open('$M/reference/sequences.json'))['prompt']['ids'])))")
echo "== moxie info -m $M"
./build/bin/moxie info -m "$M"
echo
echo "== moxie generate -m $M --tokens <prompt> -n 32 --greedy"
./build/bin/moxie generate -m "$M" --tokens "$PROMPT" -n 32 --greedy
echo "   Hugging Face transformers generated:"
/usr/bin/python3 -c "import json;print('  ',','.join(map(str,json.load(open('$M/reference/greedy.json'))['generated'])))"
echo
echo "== moxie logits -m $M --tokens <prompt> --out /tmp/moxie-demo.npy"
./build/bin/moxie logits -m "$M" --tokens "$PROMPT" --out /tmp/moxie-demo.npy
/usr/bin/python3 -c "
import numpy as np
a=np.load('/tmp/moxie-demo.npy'); b=np.load('$M/reference/prompt.prefill.npy')
print('   max |logit - HF transformers| = %.2e over %d x %d logits' % (abs(a-b).max(), *a.shape))"
