//! The notifier service: consumes `order.created` events and marks each
//! order notified.
//!
//! A member of a Kafka consumer group (at-least-once: an event's offset is
//! stored only after it was handled). For each event it waits a little (it
//! "prepares the mail"), sets `notified = 1` in MySQL, updates the cached
//! copy in Redis, if there is one, keeping its TTL, and publishes the order
//! confirmation mail to RabbitMQ (see [`crate::mail`]). Malformed events, events
//! for orders that no longer exist and events of orders already notified
//! (delivered again) are logged and skipped at once.

use std::time::Duration;

use anyhow::Context;
use mysql_async::Pool;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, TopicPartitionList};
use redis::aio::ConnectionManager;
use serde_json::Value;

use crate::db::{self, Order};
use crate::mail::Mailer;
use crate::orders::cache_key;
use crate::{NotifierArgs, kafka, log, mail};

/// Logs partition assignments; `notifier ready` is what scripts wait for.
struct Ctx;

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                log!("notifier", "notifier ready: assigned {}", partitions(tpl))
            }
            Rebalance::Revoke(tpl) => log!("notifier", "revoked {}", partitions(tpl)),
            Rebalance::Error(e) => log!("notifier", "rebalance error: {e}"),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> String {
    let list: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    if list.is_empty() {
        "no partitions".into()
    } else {
        list.join(", ")
    }
}

/// Consumes until SIGTERM or Ctrl-C.
pub async fn run(args: NotifierArgs) -> anyhow::Result<()> {
    let b = &args.backends;
    let pool = db::connect(&b.mysql).await?;
    let redis_client = redis::Client::open(b.redis.as_str()).context("invalid Redis URL")?;
    let mut redis = ConnectionManager::new(redis_client)
        .await
        .context("cannot connect to Redis (is it running? see scripts/services.sh)")?;
    kafka::ensure_topic(&b.kafka, &b.topic).await?;
    let mailer = mail::connect(&args.amqp, &args.mail_exchange).await?;
    let consumer: StreamConsumer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", &b.kafka)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .create_with_context(Ctx)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&b.topic])
        .with_context(|| format!("subscribing to {}", b.topic))?;
    log!(
        "notifier",
        "consuming {} as group {} (delay {} ms)",
        b.topic,
        args.group,
        args.delay_ms
    );
    let delay = Duration::from_millis(args.delay_ms);
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    handle(&pool, &mut redis, &mailer, &m, delay).await;
                    if let Err(e) = consumer.store_offset_from_message(&m) {
                        log!("notifier", "storing offset {}: {e}", m.offset());
                    }
                }
                Err(e) => {
                    log!("notifier", "kafka: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    log!("notifier", "shutting down");
    // Commit what was handled before leaving the group.
    if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        log!("notifier", "final commit: {e}");
    }
    drop(consumer);
    pool.disconnect().await?;
    Ok(())
}

/// Handles one event; problems are logged, never fatal.
async fn handle(
    pool: &Pool,
    redis: &mut ConnectionManager,
    mailer: &Mailer,
    m: &BorrowedMessage<'_>,
    delay: Duration,
) {
    let at = format!("{}[{}]@{}", m.topic(), m.partition(), m.offset());
    let order_no = m
        .payload()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok())
        .and_then(|v| {
            v.get("order_no")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let Some(order_no) = order_no else {
        log!("notifier", "skipping {at}: not an order event");
        return;
    };
    // Look first: events of deleted orders, and events delivered again
    // (at-least-once), are done with at once.
    let order = match db::find_order(pool, &order_no).await {
        Ok(Some(order)) if order.notified => {
            log!("notifier", "{at}: {order_no} was already notified");
            return;
        }
        Ok(Some(order)) => order,
        Ok(None) => {
            log!(
                "notifier",
                "{at}: order {order_no} is gone (deleted), nothing to do"
            );
            return;
        }
        Err(e) => {
            log!("notifier", "{at}: looking up {order_no}: {e:#}");
            return;
        }
    };
    tokio::time::sleep(delay).await; // "preparing the mail"
    match db::mark_notified(pool, &order_no).await {
        Ok(true) => {}
        Ok(false) => {
            log!(
                "notifier",
                "{at}: order {order_no} is gone (deleted), nothing to do"
            );
            return;
        }
        Err(e) => {
            log!("notifier", "{at}: marking {order_no} notified: {e:#}");
            return;
        }
    }
    if let Err(e) = update_cache(redis, &order_no).await {
        log!("notifier", "{at}: updating the cache of {order_no}: {e:#}");
    }
    if let Err(e) = mailer.order_confirmed(&order).await {
        log!("notifier", "{at}: the mail of {order_no}: {e:#}");
        return;
    }
    log!(
        "notifier",
        "notified {order_no} ({at}; mail to {} via {})",
        order.user,
        mail::ROUTING_KEY
    );
}

/// Sets `notified` in the cached copy, if there is one, keeping its TTL.
async fn update_cache(redis: &mut ConnectionManager, order_no: &str) -> anyhow::Result<()> {
    let key = cache_key(order_no);
    let cached: Option<String> = redis::cmd("GET").arg(&key).query_async(redis).await?;
    let Some(text) = cached else { return Ok(()) };
    let mut order: Order = serde_json::from_str(&text).context("cached order is not an order")?;
    order.notified = true;
    // XX: only if it still exists; KEEPTTL: the order service's TTL stays.
    let _: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(serde_json::to_string(&order)?)
        .arg("XX")
        .arg("KEEPTTL")
        .query_async(redis)
        .await?;
    Ok(())
}
