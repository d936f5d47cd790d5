#!/usr/bin/env bash
# Start, idempotently, the services atf's tests and demo cases talk to:
#   MariaDB  127.0.0.1:3306 (root, empty password, database `test`)
#   Redis    127.0.0.1:6379
#   tansu    127.0.0.1:9092, a Kafka-protocol broker (in-memory storage),
#            installed by scripts/ensure-tools.sh --broker when missing,
#            and the Kafka topics listed in TOPICS below.
#   PostgreSQL  127.0.0.1:5432 (trust for 127.0.0.1; users postgres and root; database `test`)
#   RabbitMQ    127.0.0.1:5672 (guest/guest)
#   Mosquitto   127.0.0.1:1883 (MQTT, anonymous)
#   NATS        127.0.0.1:4222 with JetStream
# The last four come from Debian's packages (postgresql, rabbitmq-server,
# mosquitto, nats-server), installed with apt-get when missing.
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

apt_updated=""
# apt_install PACKAGE...: install Debian packages (apt-get update once per run).
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$* missing and this is not a Debian machine: install them"
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# as_user USER COMMAND...: run COMMAND as USER (for PostgreSQL's peer-authenticated socket).
as_user() {
  local user="$1"; shift
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else sudo -u "$user" "$@"; fi
}

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

# --- PostgreSQL --------------------------------------------------------------
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
pg_ok() { psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'select 1'; }
if pg_ok >/dev/null 2>&1; then
  log "PostgreSQL already answers on 127.0.0.1:5432"
else
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  if ! pg_up >/dev/null 2>&1; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    log "starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
      die "PostgreSQL $version did not start (see /var/log/postgresql/)"
    wait_for "PostgreSQL" pg_up ||
      die "PostgreSQL did not answer within ${wait_seconds}s (see /var/log/postgresql/)"
  fi
  # What the tests expect, as on the project's machines: trust for TCP
  # connections from 127.0.0.1, the users postgres and root, database test.
  hba="$(as_user postgres psql -Atqc 'show hba_file')" || die "cannot ask PostgreSQL for its pg_hba.conf"
  if ! $SUDO grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    log "PostgreSQL: trusting TCP connections from 127.0.0.1 ($hba)"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_user postgres psql -Atqc 'select pg_reload_conf()' >/dev/null
  fi
  as_user postgres psql -Atqc "select 1 from pg_roles where rolname = 'root'" | grep -q 1 ||
    as_user postgres psql -qc 'create role root superuser login' >/dev/null
  as_user postgres psql -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
    as_user postgres psql -qc 'create database test' >/dev/null
  wait_for "PostgreSQL (database test)" pg_ok ||
    die "PostgreSQL answers but not to postgres@127.0.0.1/test: check $hba"
fi

# --- RabbitMQ ----------------------------------------------------------------
# A real AMQP 0-9-1 broker answers the protocol header with a method frame (type 1).
amqp_ok() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672; printf "AMQP\x00\x00\x09\x01" >&3; head -c 1 <&3' 2>/dev/null |
    od -An -tx1 | grep -q 01
}
if amqp_ok; then
  log "RabbitMQ already answers on 127.0.0.1:5672"
else
  command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
  if ! port_open 5672; then
    log "starting RabbitMQ"
    $SUDO rabbitmq-server -detached || die "rabbitmq-server -detached failed (see /var/log/rabbitmq/)"
  fi
  # The broker takes several seconds to boot: give it at least 90.
  saved_wait="$wait_seconds"
  ((wait_seconds >= 90)) || wait_seconds=90
  wait_for "RabbitMQ" amqp_ok ||
    die "RabbitMQ did not answer AMQP on 127.0.0.1:5672 (see /var/log/rabbitmq/)"
  wait_seconds="$saved_wait"
fi

# --- Mosquitto (MQTT) --------------------------------------------------------
# An MQTT broker answers a CONNECT packet with a CONNACK (0x20).
mqtt_ok() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/1883; printf "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" >&3; head -c 1 <&3' 2>/dev/null |
    od -An -tx1 | grep -q 20
}
if mqtt_ok; then
  log "Mosquitto already answers on 127.0.0.1:1883"
else
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
  if ! port_open 1883; then
    log "starting Mosquitto"
    $SUDO install -d -o mosquitto -g mosquitto /run/mosquitto /var/log/mosquitto /var/lib/mosquitto 2>/dev/null || true
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf || die "mosquitto did not start (see /var/log/mosquitto/)"
  fi
  wait_for "Mosquitto" mqtt_ok ||
    die "Mosquitto did not answer MQTT on 127.0.0.1:1883 (see /var/log/mosquitto/)"
fi

# --- NATS with JetStream -----------------------------------------------------
# A NATS server greets with an INFO line, which says whether JetStream is on.
nats_info() { timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222; head -n 1 <&3' 2>/dev/null; }
nats_ok() { nats_info | grep -q '"jetstream":true'; }
if nats_ok; then
  log "NATS with JetStream already answers on 127.0.0.1:4222"
else
  [ -x /usr/sbin/nats-server ] || apt_install nats-server
  if port_open 4222 && systemctl is-active --quiet nats-server 2>/dev/null; then
    # On a machine with systemd, installing Debian's package starts its
    # nats-server.service, which runs /etc/nats-server.conf: 127.0.0.1:4222
    # without JetStream. Turn JetStream on there and restart the service.
    if ! $SUDO grep -q '^jetstream' /etc/nats-server.conf; then
      log "NATS: turning JetStream on in /etc/nats-server.conf (store: /var/lib/nats-server)"
      if id nats >/dev/null 2>&1; then
        $SUDO install -d -o nats -g nats /var/lib/nats-server
      else
        $SUDO install -d /var/lib/nats-server
      fi
      printf 'jetstream {\n  store_dir: "/var/lib/nats-server"\n}\n' | $SUDO tee -a /etc/nats-server.conf >/dev/null
    fi
    log "restarting nats-server.service"
    $SUDO systemctl restart nats-server
  elif port_open 4222; then
    die "something listens on 127.0.0.1:4222 but is not NATS with JetStream: $(nats_info | cut -c1-120)"
  else
    log "starting NATS with JetStream (log: /var/log/nats-server.log)"
    $SUDO install -d /var/lib/nats-server
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  fi
  wait_for "NATS" nats_ok ||
    die "NATS did not answer with JetStream on 127.0.0.1:4222 (see /var/log/nats-server.log)"
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

log "ready: MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432, RabbitMQ 127.0.0.1:5672, Mosquitto 127.0.0.1:1883, NATS 127.0.0.1:4222, Kafka $broker"
