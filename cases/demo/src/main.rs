//! `atf-demo`: the small order system that atf's example suites (`cases/`)
//! are written against. One binary, two services:
//!
//! - `atf-demo orders` — the **order service**, HTTP on 127.0.0.1:18080:
//!   `POST /orders`, `GET /orders/{order_no}`, `DELETE /orders/{order_no}`,
//!   `GET /health`. It writes orders to MySQL (`demo_orders`), prices them
//!   from `demo_products`, caches them in Redis (`order:<order_no>`, with a
//!   TTL), reads the feature switch `feature:discount` from Redis ("on" →
//!   10% off) and publishes `order.created` events to Kafka
//!   (`demo.order.created`).
//! - `atf-demo notifier` — the **notifier service**: a Kafka consumer group
//!   on `demo.order.created` that, after a short delay, sets `notified = 1`
//!   on the order in MySQL and in the Redis cache, and hands the order
//!   confirmation mail to the mail gateway through RabbitMQ (exchange
//!   `demo.mail`, routing key `mail.order-confirmed`).
//!
//! Every setting is a flag or an environment variable (`atf-demo orders
//! --help`). `--bug` (or `DEMO_BUG=1`) turns on one deliberate bug in the
//! order service, for the negative demo (`just demo-fail`). Both services
//! create their tables when missing and stop cleanly on SIGTERM or Ctrl-C.

mod db;
mod kafka;
mod mail;
mod notifier;
mod orders;

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Prints one log line to stderr: time, service, message.
#[macro_export]
macro_rules! log {
    ($svc:expr, $($arg:tt)*) => {
        eprintln!(
            "{} {:<8} {}",
            chrono::Local::now().format("%H:%M:%S%.3f"),
            $svc,
            format!($($arg)*)
        )
    };
}

#[derive(Parser)]
#[command(
    name = "atf-demo",
    version,
    about = "The demo order system of atf's example suites"
)]
struct Cli {
    #[command(subcommand)]
    service: Service,
}

#[derive(Subcommand)]
enum Service {
    /// The order service (HTTP API over MySQL, Redis and Kafka).
    Orders(OrdersArgs),
    /// The notifier service (consumes order events, marks orders notified).
    Notifier(NotifierArgs),
}

/// Where the backing services are; shared by both services.
#[derive(Args, Clone, Debug)]
pub struct Backends {
    /// MySQL URL (`prefer_socket=false` is added so 127.0.0.1 stays on TCP).
    #[arg(
        long,
        env = "DEMO_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306/test"
    )]
    pub mysql: String,
    /// Redis URL.
    #[arg(
        long,
        env = "DEMO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub redis: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "DEMO_KAFKA", default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// The topic of `order.created` events.
    #[arg(long, env = "DEMO_TOPIC", default_value = "demo.order.created")]
    pub topic: String,
}

#[derive(Args, Clone, Debug)]
pub struct OrdersArgs {
    #[command(flatten)]
    pub backends: Backends,
    /// Address to listen on.
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Seconds an order stays cached in Redis.
    #[arg(long, env = "DEMO_CACHE_TTL", default_value_t = 300)]
    pub cache_ttl: u64,
    /// Turn on the deliberate bug (the discount is applied twice).
    #[arg(long, env = "DEMO_BUG")]
    pub bug: bool,
}

#[derive(Args, Clone, Debug)]
pub struct NotifierArgs {
    #[command(flatten)]
    pub backends: Backends,
    /// Kafka consumer group.
    #[arg(long, env = "DEMO_GROUP", default_value = "atf-demo-notifier")]
    pub group: String,
    /// Milliseconds the notifier takes per event (it "prepares the mail").
    #[arg(long, env = "DEMO_NOTIFY_DELAY_MS", default_value_t = 300)]
    pub delay_ms: u64,
    /// RabbitMQ URL of the mail gateway's broker.
    #[arg(
        long,
        env = "DEMO_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    /// The topic exchange the confirmation mails go to.
    #[arg(long, env = "DEMO_MAIL_EXCHANGE", default_value = "demo.mail")]
    pub mail_exchange: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (name, result) = match cli.service {
        Service::Orders(args) => ("orders", orders::run(args).await),
        Service::Notifier(args) => ("notifier", notifier::run(args).await),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log!(name, "fatal: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves when the process gets SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
