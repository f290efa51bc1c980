#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
# System packages: OpenSSH server (the SSH tests start a real sshd on 127.0.0.1) and Chromium
# (the report is checked in a real headless browser). Python: edgebench with its [dev] extra.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "note: ${need[*]} not installed and no root: the SSH/browser tests will skip" >&2
  fi
fi

python3 -m pip install -q -e ".[dev]"
exec python3 -m pytest -q "$@"
