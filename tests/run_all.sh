#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian's chromium and nginx), checks the code
# with ruff and mypy, then runs every test: the JavaScript client's unit tests under node, and the
# Python suite, one folder per layer (protocol, http, browser, notebook, tools, paths, compat). Arguments go to pytest:
#   bash tests/run_all.sh tests/protocol     # one layer
#   bash tests/run_all.sh -m 'not notebook'  # every layer but one
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)  # stream tests behind a proxy
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Lint and types first (settings in pyproject.toml): a finding stops the run before the suites.
python3 -m ruff check --quiet jchannel_http tests benchmarks
python3 -m mypy --no-error-summary

node --test tests/js/
python3 -m pytest -q -p no:cacheprovider "$@"
