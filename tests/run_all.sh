#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian's chromium), then runs every test:
# the JavaScript client's unit tests under node, and the Python suite (core, HTTP, browser).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

node --test tests/js/
python3 -m pytest -q -p no:cacheprovider "$@"
