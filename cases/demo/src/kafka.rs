//! Kafka: the topic of order events, and publishing one.
//!
//! The event is JSON, keyed by the order number, with a header
//! `source: order-service` so consumers can tell who wrote it.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::json;

use crate::db::Order;

/// The name of the header that tells who published an event, and its value.
pub const SOURCE_HEADER: (&str, &str) = ("source", "order-service");

/// Creates `topic` (one partition) unless it exists; brokers such as tansu
/// do not create topics on first use.
pub async fn ensure_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the Kafka admin client")?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .with_context(|| format!("cannot reach Kafka at {bootstrap} (see scripts/services.sh)"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(anyhow!("creating topic {name}: {code}")),
        }
    }
    Ok(())
}

/// A producer that waits for the broker's acknowledgement of every event.
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "5000")
        .create()
        .context("creating the Kafka producer")
}

/// Publishes the `order.created` event of `order`; returns (partition, offset).
pub async fn publish_created(
    producer: &FutureProducer,
    topic: &str,
    order: &Order,
) -> Result<(i32, i64)> {
    let value = json!({
        "event": "order.created",
        "order_no": order.order_no,
        "sku": order.sku,
        "qty": order.qty,
        "user": order.user,
        "amount": order.amount,
        "created_at": order.created_at,
    })
    .to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: SOURCE_HEADER.0,
        value: Some(SOURCE_HEADER.1),
    });
    let record = FutureRecord::to(topic)
        .key(&order.order_no)
        .payload(&value)
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| anyhow!("publishing to {topic}: {e}"))?;
    Ok((delivery.partition, delivery.offset))
}

/// Asks the broker for the topic's metadata, for `/health`.
pub async fn ping(producer: &FutureProducer, topic: &str) -> Result<()> {
    let producer = producer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let md = producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(2))?;
        match md.topics().first().and_then(|t| t.error()) {
            Some(e) => Err(anyhow!("topic {topic}: {:?}", RDKafkaErrorCode::from(e))),
            None => Ok(()),
        }
    })
    .await?
}
