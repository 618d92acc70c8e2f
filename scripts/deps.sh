#!/usr/bin/env bash
# Installs the Debian packages pinmm needs to build and test, idempotently.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

packages=(
  make cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  googletest libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
  liburcu-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev
  chromium
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing packages: ${missing[*]}"
  echo "deps: run as root: $cmd"
  exit 1
fi
echo "deps: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
