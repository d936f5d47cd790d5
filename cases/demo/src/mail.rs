//! RabbitMQ: the order confirmation mail the notifier hands to the mail
//! gateway.
//!
//! Once an order is marked notified, the notifier publishes one message to
//! the topic exchange `demo.mail` (durable; declared when missing) with the
//! routing key `mail.order-confirmed`: persistent, JSON (`template`, `to`,
//! `subject`, `order_no`, `sku`, `qty`, `amount`), header
//! `source: notifier`. It waits until the broker confirms the message.

use anyhow::{Context, Result, anyhow};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use serde_json::json;

use crate::db::Order;

/// The routing key of an order confirmation mail.
pub const ROUTING_KEY: &str = "mail.order-confirmed";

/// A connection and a confirming channel to the mail exchange.
pub struct Mailer {
    /// Kept open for as long as the channel is used.
    _conn: Connection,
    channel: Channel,
    exchange: String,
}

/// Connects to RabbitMQ at `url` and declares the topic exchange `exchange`.
pub async fn connect(url: &str, exchange: &str) -> Result<Mailer> {
    let props = ConnectionProperties::default().with_connection_name("atf-demo-notifier".into());
    let conn = Connection::connect(url, props)
        .await
        .context("cannot connect to RabbitMQ (is it running? see scripts/services.sh)")?;
    let channel = conn.create_channel().await.context("RabbitMQ channel")?;
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring the exchange {exchange}"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("RabbitMQ publisher confirms")?;
    Ok(Mailer {
        _conn: conn,
        channel,
        exchange: exchange.to_string(),
    })
}

impl Mailer {
    /// Publishes the confirmation mail of `order` and waits for the broker's confirm.
    pub async fn order_confirmed(&self, order: &Order) -> Result<()> {
        let body = json!({
            "template": "order-confirmed",
            "to": order.user,
            "subject": format!("Your order {} is confirmed", order.order_no),
            "order_no": order.order_no,
            "sku": order.sku,
            "qty": order.qty,
            "amount": order.amount,
        })
        .to_string();
        let mut headers = FieldTable::default();
        headers.insert(
            "source".into(),
            AMQPValue::LongString(LongString::from(b"notifier".to_vec())),
        );
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .with_context(|| format!("publishing to {}", self.exchange))?
            .await
            .with_context(|| format!("confirm from {}", self.exchange))?;
        if matches!(confirm, Confirmation::Nack(_)) {
            return Err(anyhow!(
                "{} refused the mail of {}",
                self.exchange,
                order.order_no
            ));
        }
        Ok(())
    }
}
