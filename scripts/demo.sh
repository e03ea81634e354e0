#!/usr/bin/env bash
# The demo: Moxie's bundled MoE model (models/moxie-demo-moe, trained on the Brown corpus; see its
# MODEL_CARD.md) described and continuing a prompt, greedy and sampled.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== moxie info"
./build/bin/moxie info
echo
echo "== moxie run -p \"The jury said\" -n 40 --temp 0"
./build/bin/moxie run -p "The jury said" -n 40 --temp 0
echo
echo "== moxie run -p \"In the morning\" -n 40 --temp 0.8 --seed 1"
./build/bin/moxie run -p "In the morning" -n 40 --temp 0.8 --seed 1
