//! `amqp.publish`: one message to an exchange, on a pooled channel in
//! confirm mode; the step ends when the broker has confirmed the message
//! (and, with `mandatory`, routed it to a queue).

use std::sync::Arc;

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};

use super::fields::{properties, short, table};
use super::{Clients, specs};
use crate::Env;

/// The `amqp.publish` keyword.
pub struct Publish {
    env: Env,
    clients: Arc<Clients>,
}

impl Publish {
    /// The keyword, publishing through `clients`.
    pub fn new(env: Env, clients: Arc<Clients>) -> Publish {
        Publish { env, clients }
    }
}

/// What to send, built from the step's arguments before anything connects.
struct Message {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    props: BasicProperties,
    mandatory: bool,
}

fn message(c: &Call<'_>) -> Result<Message, KeywordError> {
    let exchange = c.str_arg("exchange")?.unwrap_or("").to_string();
    let routing_key = c.str_arg("routing_key")?.unwrap_or("").to_string();
    let mut props = BasicProperties::default();
    let body = match (c.arg("body"), c.arg("json")) {
        (Some(_), Some(_)) => return Err(KeywordError::new("give only one of `body` and `json`")),
        (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
        (Some(other), None) => other.to_string().into_bytes(),
        (None, Some(v)) => {
            props = props.with_content_type("application/json".into());
            v.to_string().into_bytes()
        }
        (None, None) => Vec::new(),
    };
    if c.bool_arg("persistent", false)? {
        props = props.with_delivery_mode(2);
    }
    match c.arg("headers") {
        None => {}
        Some(Value::Object(map)) => {
            props = props.with_headers(table(map).map_err(KeywordError::new)?);
        }
        Some(other) => {
            return Err(KeywordError::new(format!(
                "argument `headers` must be an object of name → value, got {}",
                type_name(other)
            )));
        }
    }
    match c.arg("properties") {
        None => {}
        Some(Value::Object(map)) => props = properties(props, map).map_err(KeywordError::new)?,
        Some(other) => {
            return Err(KeywordError::new(format!(
                "argument `properties` must be an object, got {}",
                type_name(other)
            )));
        }
    }
    Ok(Message {
        exchange,
        routing_key,
        body,
        props,
        mandatory: c.bool_arg("mandatory", false)?,
    })
}

impl Keyword for Publish {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    /// It waits only in [`crate::run_on`] (the broker's confirm
    /// included) and holds no lock across it.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let m = message(c)?;
        // Checked here so that a long name is the step's error, not a panic in the client.
        let exchange = short("`exchange`", &m.exchange).map_err(KeywordError::new)?;
        let routing_key = short("`routing_key`", &m.routing_key).map_err(KeywordError::new)?;
        let res = self.clients.resource(c.resource()?)?;
        let remaining = c.remaining();
        let target = format!(
            "exchange `{}` with routing key `{}`",
            m.exchange, m.routing_key
        );
        let result = json!({ "exchange": m.exchange, "routing_key": m.routing_key });
        crate::run_on(&self.env.runtime, async move {
            let fut = async {
                let ch = res.publisher().await?;
                let options = BasicPublishOptions {
                    mandatory: m.mandatory,
                    immediate: false,
                };
                let confirm = ch
                    .basic_publish(exchange, routing_key, options, &m.body, m.props)
                    .await
                    .map_err(|e| res.error(&e))?;
                let confirmation = confirm.await.map_err(|e| res.error(&e))?;
                res.give_back(ch);
                match confirmation {
                    Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
                    Confirmation::Ack(Some(returned)) => Err(KeywordError::new(format!(
                        "{}: the broker returned the message published to {target}: {} {} \
                         (no queue is bound to take it)",
                        res.label, returned.reply_code, returned.reply_text
                    ))),
                    Confirmation::Nack(_) => Err(KeywordError::new(format!(
                        "{}: the broker refused (nack) the message published to {target}",
                        res.label
                    ))),
                }
            };
            match tokio::time::timeout(remaining, fut).await {
                Ok(r) => r,
                Err(_) => Err(KeywordError::timeout(format!(
                    "{} did not confirm the message within the step timeout ({} ms)",
                    res.label,
                    remaining.as_millis()
                ))),
            }
        })?;
        Ok(result)
    }
}
