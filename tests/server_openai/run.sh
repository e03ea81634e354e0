#!/usr/bin/env bash
# Runs test.mjs with the official `openai` npm package, installed into WORK_DIR (the build tree)
# on first use. Exit 77 (reported by ctest as skipped, never as passed) when npm cannot fetch it.
# Usage: run.sh MOXIE_BINARY DEMO_MODEL_DIR WORK_DIR
set -euo pipefail
moxie=$1 demo=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
OPENAI_VERSION=4.95.0
mkdir -p "$work"
cd "$work"
if [ ! -f node_modules/openai/package.json ] ||
   ! grep -q "\"version\": \"$OPENAI_VERSION\"" node_modules/openai/package.json; then
  [ -f package.json ] || echo '{"name":"moxie-openai-e2e","private":true}' > package.json
  if ! npm install --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION"; then
    echo "SKIPPED: npm could not install openai@$OPENAI_VERSION (no registry access?)"
    exit 77
  fi
fi
cp "$here/test.mjs" "$work/test.mjs"
exec node "$work/test.mjs" "$moxie" "$demo"
