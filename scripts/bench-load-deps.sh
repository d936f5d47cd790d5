#!/usr/bin/env bash
# Install, idempotently, what `just bench load` compares atf with: Debian's
# nginx (the static endpoint) and wrk (the ceiling), and Locust from PyPI
# in the project venv .venv-bench/ (the Python peer).
# Safe to run again: each step is skipped when already there.
set -euo pipefail

log() { printf 'bench-load-deps: %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
root="$(cd "$(dirname "$0")/.." && pwd)"

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv="$root/.venv-bench"
if [ ! -x "$venv/bin/locust" ]; then
  log "installing locust into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet locust
fi
