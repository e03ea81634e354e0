#!/usr/bin/env bash
# Installs the Debian 12 packages Moxie needs to build and test. Idempotent: does nothing when
# everything is already installed. Run as root (or with sudo available).
set -euo pipefail
PKGS=(
  cmake ninja-build g++ ccache            # toolchain
  nlohmann-json3-dev libcli11-dev         # JSON, command line
  libcpp-httplib-dev                      # moxie serve (HTTP)
  libgtest-dev libgmock-dev               # tests
  libbenchmark-dev                        # bench/kernels_bench.cc (optional target)
  libpcre2-dev libutf8proc-dev pkg-config  # tokenizer regexes (Unicode classes), NFC
  python3-numpy                           # CLI end-to-end checks read .npy with numpy
)
# The server's end-to-end test drives it with the official `openai` npm package. Node may come
# from elsewhere (e.g. NodeSource, which bundles npm); only without node do we take Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
