#!/usr/bin/env bash
# Install, idempotently, what the report tests of atf-reports need beyond
# cargo: Python's `junitparser` (a real JUnit consumer that reads junit.xml)
# and Debian's `chromium` (renders index.html headless, for the DOM and a
# screenshot). Safe to run again: each step is skipped when already there.
set -euo pipefail

log() { printf 'test-deps: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
  log "python3 is missing: install it first (apt-get install python3 python3-pip)"
  exit 1
fi

if ! python3 -c 'import junitparser' >/dev/null 2>&1; then
  log "installing junitparser from PyPI"
  python3 -m pip install --quiet junitparser
fi

if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (once, a few minutes)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
