#!/usr/bin/env bash
# Install, idempotently, what building and testing atf needs on a fresh
# Debian machine that has cargo: the C build packages of rdkafka, `just`,
# and (with --broker) the tansu Kafka-protocol broker.
# Safe to run again: each step is skipped when its tool is already there.
set -euo pipefail

want_broker=0
for arg in "$@"; do
  case "$arg" in
    --broker) want_broker=1 ;;
    *) echo "ensure-tools: unknown argument $arg" >&2; exit 2 ;;
  esac
done

export PATH="$HOME/.cargo/bin:$PATH"
log() { printf 'ensure-tools: %s\n' "$*" >&2; }

# Debian packages that rdkafka's cmake build and its TLS/SASL/zstd features link against.
pkgs=(cmake g++ make pkg-config libssl-dev libsasl2-dev libzstd-dev zlib1g-dev libcurl4-openssl-dev curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v just >/dev/null 2>&1; then
  log "installing just (about 2 minutes, once)"
  cargo install just --version 1.59.0 --locked --quiet
fi

if ((want_broker)) && ! tansu --version >/dev/null 2>&1; then
  log "installing the tansu Kafka-protocol broker (10-15 minutes, once)"
  # A test broker needs no full optimization: opt-level 1 builds faster.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install tansu --version 0.6.0 --locked --features dynostore --quiet
fi
