#!/usr/bin/env bash
# Install, idempotently, what the report and console tests (atf-reports'
# tests and runner/tests/it) need beyond cargo, all inside the project
# (nothing goes into the system's Python or Node):
# - a Python virtual environment in .tools/venv with `junitparser` (a real
#   JUnit consumer that reads junit.xml) and the validators of the CI
#   recipes (ci/validate.py); on stock Debian, whose python3
#   refuses `pip install` (PEP 668), the venv is how Python packages go in;
# - the Allure CLI (npm `allure-commandline`, Allure 2, which runs on Java)
#   in .tools/node, which renders the Allure results of `--allure`;
# - Debian's `chromium` (renders index.html headless), util-linux `script`
#   (runs atf on a pseudo-terminal) and a Java runtime for Allure, when
#   missing.
# Tests find the tools through tools_dir() in reports/tests/common/tools.rs.
# Safe to run again: each step is skipped when already there.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
VENV="$TOOLS/venv"
NODE_DIR="$TOOLS/node"
JUNITPARSER_VERSION="4.0.2"
ALLURE_VERSION="2.46.1"

log() { printf 'test-deps: %s\n' "$*" >&2; }

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Python: a project virtual environment -------------------------------
if ! command -v python3 >/dev/null 2>&1; then
  log "installing Debian's python3"
  apt_install python3 python3-venv
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to make one.
    rm -rf "$VENV"
    log "installing Debian's python3-venv"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
fi
# junitparser reads junit.xml; check-jsonschema (GitLab's CI schema),
# kubernetes-validate (the Kubernetes schemas) and dockerfile-parse check
# the CI recipes offline (ci/validate.py).
PY_PACKAGES=("junitparser==$JUNITPARSER_VERSION" "check-jsonschema==0.39.0" \
  "kubernetes-validate==1.37.0" "dockerfile-parse==2.0.1")
if ! "$VENV/bin/python" -c 'import junitparser, check_jsonschema, kubernetes_validate, dockerfile_parse' >/dev/null 2>&1; then
  log "installing ${PY_PACKAGES[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

# --- Allure CLI: npm into the project, Java to run it ----------------------
if ! command -v java >/dev/null 2>&1; then
  log "installing a Java runtime for the Allure CLI (Debian's default-jre-headless)"
  apt_install default-jre-headless
fi
if ! command -v npm >/dev/null 2>&1; then
  log "installing Debian's nodejs and npm"
  apt_install nodejs npm
fi
if [ ! -x "$NODE_DIR/node_modules/.bin/allure" ]; then
  log "installing allure-commandline $ALLURE_VERSION into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || printf '{ "private": true }\n' > "$NODE_DIR/package.json"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "allure-commandline@$ALLURE_VERSION" >/dev/null
fi

# --- playwright-core: the browser tests of `atf serve` ----------------------
# From tests/browser/package.json and its package-lock.json, with `npm ci`,
# into .tools/browser; it drives Debian's chromium (below), no browser
# download. Installed again only when the lock file changed.
BROWSER_DIR="$TOOLS/browser"
if ! cmp -s tests/browser/package-lock.json "$BROWSER_DIR/package-lock.json" \
  || [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core (tests/browser/package-lock.json) into $BROWSER_DIR"
  mkdir -p "$BROWSER_DIR"
  cp tests/browser/package.json tests/browser/package-lock.json "$BROWSER_DIR/"
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent >/dev/null)
fi

# --- Debian packages ------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (once, a few minutes)"
  apt_install chromium
fi

if ! command -v script >/dev/null 2>&1; then
  log "installing util-linux script (Debian package bsdutils)"
  apt_install bsdutils
fi
