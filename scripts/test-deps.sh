#!/usr/bin/env bash
# Install, idempotently, what the report and console tests (atf-reports'
# tests and runner/tests/it) need beyond cargo: Python's `junitparser` (a
# real JUnit consumer that reads junit.xml), Debian's `chromium` (renders
# index.html headless, for the DOM and a screenshot) and util-linux
# `script` (runs atf on a pseudo-terminal, for the console's colours).
# Safe to run again: each step is skipped when already there.
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

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (once, a few minutes)"
  apt_install chromium
fi

if ! command -v script >/dev/null 2>&1; then
  log "installing util-linux script (Debian package bsdutils)"
  apt_install bsdutils
fi
