#!/usr/bin/env bash
# Start, idempotently, the services atf's tests and demo cases talk to:
#   MariaDB  127.0.0.1:3306 (root, empty password, database `test`)
#   Redis    127.0.0.1:6379
#   tansu    127.0.0.1:9092, a Kafka-protocol broker (in-memory storage),
#            installed by scripts/ensure-tools.sh --broker when missing,
#            and the Kafka topics listed in TOPICS below.
# A service that already answers is left alone. Safe to run again.
#
# Environment:
#   ATF_SERVICES_DIR   where the broker's log and pid file go (default /tmp/atf-services)
#   ATF_KAFKA_TOPICS   extra topics to create, separated by spaces
#   ATF_WAIT_SECONDS   how long to wait for each service to answer (default 30)
set -euo pipefail

export PATH="$HOME/.cargo/bin:$PATH"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_dir="${ATF_SERVICES_DIR:-/tmp/atf-services}"
wait_seconds="${ATF_WAIT_SECONDS:-30}"
broker="tcp://127.0.0.1:9092"

# Topics the tests and demo cases use (the keyword tests make their own as well).
TOPICS=(atf-test demo.order.created)
# shellcheck disable=SC2206
TOPICS+=(${ATF_KAFKA_TOPICS:-})

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds or time runs out.
wait_for() {
  local what="$1"; shift
  local deadline=$((SECONDS + wait_seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
  log "$what answers"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- MariaDB -----------------------------------------------------------------
mariadb_ok() { mariadb -uroot -h127.0.0.1 -P3306 --protocol=TCP -e 'select 1' test; }
if mariadb_ok >/dev/null 2>&1; then
  log "MariaDB already answers on 127.0.0.1:3306"
else
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] ||
    die "MariaDB is not installed (apt-get install mariadb-server)"
  log "starting MariaDB"
  $SUDO install -d -o mysql -g mysql /run/mysqld
  # /etc/mysql/my.cnf names the `mysql` user, the socket and the data folder.
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for "MariaDB" mariadb_ok ||
    die "MariaDB did not answer within ${wait_seconds}s (see journalctl or /var/lib/mysql/*.err)"
  mariadb -uroot -h127.0.0.1 -P3306 --protocol=TCP -e 'CREATE DATABASE IF NOT EXISTS test' ||
    die "cannot create the database test"
fi

# --- Redis -------------------------------------------------------------------
if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  log "Redis already answers on 127.0.0.1:6379"
else
  command -v redis-server >/dev/null 2>&1 || die "Redis is not installed (apt-get install redis-server)"
  log "starting Redis"
  $SUDO install -d /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }
  wait_for "Redis" redis_ok ||
    die "Redis did not answer within ${wait_seconds}s (see /var/log/redis/ci.log)"
fi

# --- tansu (Kafka protocol) --------------------------------------------------
if ! tansu --version >/dev/null 2>&1; then
  log "tansu is missing: installing it with scripts/ensure-tools.sh --broker (about 15 minutes, once)"
  "$here/ensure-tools.sh" --broker
fi
tansu_ok() { tansu topic list --broker "$broker"; }
mkdir -p "$state_dir"
if port_open 9092; then
  log "something already listens on 127.0.0.1:9092 (broker pid file: $state_dir/tansu.pid)"
else
  log "starting the tansu broker on $broker (log: $state_dir/tansu.log)"
  nohup setsid tansu broker \
    --listener-url "$broker" \
    --advertised-listener-url "$broker" \
    --storage-engine memory://tansu/ \
    >"$state_dir/tansu.log" 2>&1 </dev/null &
  echo $! >"$state_dir/tansu.pid"
fi
wait_for "the Kafka broker on 127.0.0.1:9092" tansu_ok ||
  die "the Kafka broker did not answer within ${wait_seconds}s: see $state_dir/tansu.log"

# `tansu topic list` prints the broker's metadata as JSON: look for `"name":"TOPIC"`.
has_topic() { grep -qF -- "\"name\":\"$1\"" <<<"$2"; }
existing="$(tansu topic list --broker "$broker" 2>/dev/null || true)"
for topic in "${TOPICS[@]}"; do
  [ -n "$topic" ] || continue
  if has_topic "$topic" "$existing"; then
    log "topic $topic exists"
  elif out="$(tansu topic create "$topic" --broker "$broker" --partitions 1 2>&1)"; then
    log "created topic $topic"
  elif has_topic "$topic" "$(tansu topic list --broker "$broker" 2>/dev/null || true)"; then
    log "topic $topic exists"
  else
    die "cannot create topic $topic: $out"
  fi
done

log "ready: MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379, Kafka $broker"
