# atf recipes. On a machine without `just`, run them as `./just RECIPE`.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build the atf binary (debug).
build:
    cargo build -p atf

# Build the optimized atf binary: target/release/atf.
release:
    cargo build -p atf --release

# Run cases: `just run cases --env demo` (arguments go to `atf run`).
run *ARGS:
    cargo run -q -p atf -- run {{ARGS}}

# Start what the tests need (build tools, MariaDB, Redis, the Kafka broker, test helpers) and run every test.
test *ARGS:
    scripts/ensure-tools.sh --broker
    scripts/services.sh
    scripts/test-deps.sh
    cargo test --workspace --no-fail-fast {{ARGS}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Measure the runner's own cost (MODE: http, check, retry, redis, mysql, pg, amqp, grpc, plugin, serve): cases/s and CPU per case;
# `just bench load`: atf load next to wrk and Locust against a local nginx.
bench *ARGS:
    scripts/ensure-tools.sh
    case "{{ARGS}}" in load*) scripts/bench-load-deps.sh ;; grpc*) scripts/bench-grpc-deps.sh ;; *) scripts/services.sh ;; esac
    cargo build --release -p atf -p atf-plugin-sign
    cargo run -q -p atf --release --example bench -- {{ARGS}}

# Run the example suites (cases/) against the demo order system, end to end.
demo *ARGS:
    scripts/demo.sh {{ARGS}}

# The negative demo: the order service runs with a deliberate bug; passes when atf catches it.
demo-fail *ARGS:
    scripts/demo.sh --bug {{ARGS}}
