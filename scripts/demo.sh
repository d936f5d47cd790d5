#!/usr/bin/env bash
# The demo, end to end, on a fresh machine: install what is missing, start
# MariaDB, Redis, the Kafka broker and RabbitMQ, build atf and the demo order system
# (cases/demo), start its two services, run the example suites in cases/
# with atf, and stop the demo services again, whatever happens.
#
#   scripts/demo.sh          exits with atf's exit code (0: every case passed)
#   scripts/demo.sh --bug    the negative demo: the order service runs with
#                            its deliberate bug; exits 0 only when atf caught
#                            it (atf exit 1), 1 when it did not
#   extra arguments after -- go to `atf run` (e.g. -- --tags smoke)
#
# Logs and reports go to target/demo/ (override with ATF_DEMO_DIR). Safe to
# run again: every step skips what is already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

bug=0
atf_args=()
while (($#)); do
  case "$1" in
    --bug) bug=1 ;;
    --) shift; atf_args=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
else
  say() { printf 'demo: %s\n' "$*"; }
fi
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 2; }

demo_dir="${ATF_DEMO_DIR:-$root/target/demo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/debug"
listen="127.0.0.1:18080"
topic="demo.order.created"
if ((bug)); then
  report_dir="$demo_dir/report-bug"
else
  report_dir="$demo_dir/report"
fi
mkdir -p "$demo_dir"

# --- 1. tools and services ----------------------------------------------------
say "checking tools (scripts/ensure-tools.sh)"
"$root/scripts/ensure-tools.sh"
say "starting MariaDB, Redis, the Kafka broker and RabbitMQ if they are down (scripts/services.sh)"
ATF_KAFKA_TOPICS="${ATF_KAFKA_TOPICS:-} $topic" "$root/scripts/services.sh"

# --- 2. build (debug: on 2 cores a release build costs more than it saves) ----
say "building atf and atf-demo"
cargo build --quiet -p atf -p atf-demo --bins

# --- 3. start the demo services, and always stop them -------------------------
pids=()
stop_services() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  ((${#pids[@]} == 0)) || say "stopped the demo services (logs: $demo_dir/orders.log, $demo_dir/notifier.log)"
  pids=()
}
trap stop_services EXIT
trap 'stop_services; exit 130' INT
trap 'stop_services; exit 143' TERM

if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then
  die "something already listens on $listen; stop it first (an order service left running?)"
fi

order_flags=()
with_bug=""
if ((bug)); then
  order_flags+=(--bug)
  with_bug=" WITH ITS DELIBERATE BUG"
fi
# Each service gets its own session (setsid), so a Ctrl-C in the terminal
# reaches atf, which then runs its cleanup against services still up; the
# trap stops them afterwards.
say "starting the notifier service (log: $demo_dir/notifier.log)"
setsid "$bin/atf-demo" notifier >"$demo_dir/notifier.log" 2>&1 </dev/null &
pids+=($!)
notifier_pid=$!
say "starting the order service on http://$listen$with_bug (log: $demo_dir/orders.log)"
DEMO_LISTEN="$listen" setsid "$bin/atf-demo" orders "${order_flags[@]}" >"$demo_dir/orders.log" 2>&1 </dev/null &
pids+=($!)
orders_pid=$!

# wait_until SECONDS WHAT PID LOG COMMAND...: poll COMMAND, failing early when PID died.
wait_until() {
  local secs="$1" what="$2" pid="$3" log="$4"; shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "$what exited (log above: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log" >&2 || true
      die "$what not ready after ${secs}s (log above: $log)"
    fi
    sleep 0.2
  done
}
wait_until 60 "the order service" "$orders_pid" "$demo_dir/orders.log" \
  curl -fsS "http://$listen/health"
say "the order service is healthy: $(curl -fsS "http://$listen/health")"
wait_until 60 "the notifier service" "$notifier_pid" "$demo_dir/notifier.log" \
  grep -q "notifier ready" "$demo_dir/notifier.log"
say "the notifier has joined its consumer group"

# --- 4. run the example suites ------------------------------------------------
say "running the example suites: atf run cases --env demo ${atf_args[*]:-}"
set +e
"$bin/atf" run cases --env demo --report-dir "$report_dir" "${atf_args[@]}"
rc=$?
set -e
say "HTML report: $report_dir/index.html (also report.json and junit.xml there)"

stop_services
if ((bug)); then
  if ((rc == 1)); then
    say "EXPECTED FAILURE: the order service ran with its deliberate bug (the discount"
    say "is applied twice) and atf caught it — the failures above are the point of"
    say "this demo. Negative demo passed."
    exit 0
  elif ((rc == 0)); then
    say "atf did NOT catch the deliberate bug: every case passed. Negative demo FAILED."
    exit 1
  else
    say "atf could not run the suites (exit $rc). Negative demo FAILED."
    exit "$rc"
  fi
fi
exit "$rc"
