#!/usr/bin/env bash
# The test command (README, .ci/run): prove the suite passes on a fresh machine.
#
# 1. System packages: OpenSSH server (the SSH tests start a real sshd on 127.0.0.1) and Chromium
#    (Playwright drives it to check the HTML report). Installed with apt when missing.
# 2. A clean virtual environment that this script creates, so nothing installed by hand on the
#    machine can make the tests pass: $EDGEBENCH_TEST_VENV (default ~/.cache/edgebench/test-venv),
#    built from `pip install -e ".[dev]"` and reused while pyproject.toml and the Python version are
#    unchanged (the stamp file inside it records their hash); any change rebuilds it from scratch.
# 3. Static checks: ruff (lint + format), mypy over edgebench/, deptry (every import declared).
# 4. pytest. Extra arguments go to pytest: ./scripts/test.sh tests/report -k browser
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

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

# pip warns once per package about index locations configured on some machines; keep the log readable
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

python=${PYTHON:-python3}
venv=${EDGEBENCH_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebench/test-venv}
stamp=$( { cat pyproject.toml; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.edgebench-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "test venv: creating $venv (pyproject.toml or Python changed)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  quiet_pip "$venv/bin/python" -m pip install -q --upgrade pip
  quiet_pip "$venv/bin/python" -m pip install -q -e ".[dev]"
  echo "$stamp" >"$venv/.edgebench-stamp"
else
  echo "test venv: reusing $venv" >&2
  # the venv may have been built from another clone: point edgebench at this one (no deps change)
  quiet_pip "$venv/bin/python" -m pip install -q --no-deps -e .
fi
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
py="$venv/bin/python"

echo "checks: ruff, mypy, deptry" >&2
"$py" -m ruff check edgebench tests benchmarks scripts
"$py" -m ruff format --check edgebench tests benchmarks scripts
"$py" -m mypy edgebench
"$py" -m deptry edgebench

exec "$py" -m pytest -q "$@"
