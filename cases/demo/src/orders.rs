//! The order service: a small HTTP API over MySQL, Redis and Kafka.
//!
//! | route | does |
//! |---|---|
//! | `POST /orders` `{sku, qty, user}` | prices the order (10% off when Redis `feature:discount` is `"on"`), inserts it into `demo_orders`, caches it in Redis (`order:<order_no>`, TTL), publishes `order.created`; `201` with the order |
//! | `GET /orders/{order_no}` | the order from the Redis cache (`x-cache: hit`), else from MySQL (`x-cache: miss`, and cached again); `404` when unknown |
//! | `DELETE /orders/{order_no}` | removes the order and its cache entry; `204`, or `404` when unknown |
//! | `GET /health` | `200 {"status": "ok", ...}` when MySQL, Redis and Kafka answer, else `503` naming what is down |
//!
//! Bad input gets `400 {"error": "..."}` (an unknown sku `422`), never a
//! panic. With `--bug` the discount is applied twice: the bug the negative
//! demo must catch.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mysql_async::Pool;
use rdkafka::producer::{FutureProducer, Producer};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use crate::db::{self, Order};
use crate::{OrdersArgs, kafka, log};

/// The Redis key of the discount feature switch.
pub const DISCOUNT_SWITCH: &str = "feature:discount";

/// The largest quantity one order may have.
const MAX_QTY: u64 = 100;

/// What every handler shares.
#[derive(Clone)]
struct App {
    pool: Pool,
    redis: ConnectionManager,
    producer: FutureProducer,
    topic: Arc<str>,
    cache_ttl: u64,
    bug: bool,
}

/// Starts the service and serves until SIGTERM or Ctrl-C.
pub async fn run(args: OrdersArgs) -> anyhow::Result<()> {
    let b = &args.backends;
    let pool = db::connect(&b.mysql).await?;
    let redis_client = redis::Client::open(b.redis.as_str()).context("invalid Redis URL")?;
    let redis = ConnectionManager::new(redis_client)
        .await
        .context("cannot connect to Redis (is it running? see scripts/services.sh)")?;
    kafka::ensure_topic(&b.kafka, &b.topic).await?;
    let producer = kafka::producer(&b.kafka)?;
    let app = App {
        pool: pool.clone(),
        redis,
        producer: producer.clone(),
        topic: b.topic.as_str().into(),
        cache_ttl: args.cache_ttl,
        bug: args.bug,
    };
    let router = Router::new()
        .route("/health", get(health))
        .route("/orders", post(create_order))
        .route("/orders/{order_no}", get(get_order).delete(delete_order))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    log!(
        "orders",
        "listening on http://{}{}",
        args.listen,
        if args.bug {
            " (with the deliberate bug ON)"
        } else {
            ""
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    log!("orders", "shutting down");
    let _ = tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(5)))
        .await;
    pool.disconnect().await?;
    Ok(())
}

/// An error answer: a status and `{"error": message}`.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        log!("orders", "internal error: {e:#}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e:#}"),
        )
    }
}

impl From<mysql_async::Error> for ApiError {
    fn from(e: mysql_async::Error) -> ApiError {
        anyhow::Error::from(e).context("MySQL").into()
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> ApiError {
        anyhow::Error::from(e).context("Redis").into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A valid `POST /orders` body.
struct NewOrder {
    sku: String,
    qty: u32,
    user: String,
}

/// Checks the body field by field, so each mistake gets its own message.
fn parse_new_order(body: &[u8]) -> Result<NewOrder, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad(
            "the body must be a JSON object {sku, qty, user}",
        ));
    };
    let text = |name: &str, max: usize| -> Result<String, ApiError> {
        match obj.get(name).and_then(Value::as_str).map(str::trim) {
            Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s.to_string()),
            _ => Err(ApiError::bad(format!(
                "`{name}` must be a non-empty string of at most {max} characters"
            ))),
        }
    };
    let sku = text("sku", 32)?;
    let user = text("user", 64)?;
    let qty = match obj.get("qty").and_then(Value::as_u64) {
        Some(q @ 1..=MAX_QTY) => q as u32,
        _ => {
            return Err(ApiError::bad(format!(
                "`qty` must be a whole number from 1 to {MAX_QTY}"
            )));
        }
    };
    Ok(NewOrder { sku, qty, user })
}

async fn create_order(State(app): State<App>, body: Bytes) -> Result<Response, ApiError> {
    let new = parse_new_order(&body)?;
    let Some(unit_cents) = db::price_cents(&app.pool, &new.sku).await? else {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown sku `{}`", new.sku),
        ));
    };
    let mut redis = app.redis.clone();
    let switch: Option<String> = redis.get(DISCOUNT_SWITCH).await?;
    let discount = switch.as_deref() == Some("on");

    let mut cents = unit_cents * i64::from(new.qty);
    if discount {
        cents = db::ten_percent_off(cents);
    }
    if app.bug && discount {
        // THE DELIBERATE BUG (--bug): a "loyalty" rule that re-applies the discount.
        cents = db::ten_percent_off(cents);
    }

    let mut order = Order {
        id: 0,
        order_no: format!("ORD-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        sku: new.sku,
        qty: new.qty,
        user: new.user,
        status: "CREATED".into(),
        notified: false,
        amount: db::money(cents),
        created_at: chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
    };
    order.id = db::insert_order(&app.pool, &order).await?;
    // Cache before publishing, so the notifier always finds the entry to update.
    cache(&app, &order).await?;
    match kafka::publish_created(&app.producer, &app.topic, &order).await {
        Ok((partition, offset)) => log!(
            "orders",
            "created {} ({} x {}, {}{}) → {}[{partition}]@{offset}",
            order.order_no,
            order.qty,
            order.sku,
            order.amount,
            if discount { ", discount on" } else { "" },
            app.topic
        ),
        Err(e) => {
            // No event, no order: undo what was written.
            log!("orders", "{e:#}; rolling back {}", order.order_no);
            db::delete_order(&app.pool, &order.order_no).await?;
            let _: () = redis.del(cache_key(&order.order_no)).await?;
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the order event could not be published: {e:#}"),
            ));
        }
    }
    let location = format!("/orders/{}", order.order_no);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response())
}

async fn get_order(
    State(app): State<App>,
    Path(order_no): Path<String>,
) -> Result<Response, ApiError> {
    let mut redis = app.redis.clone();
    let cached: Option<String> = redis.get(cache_key(&order_no)).await?;
    if let Some(order) = cached.and_then(|text| serde_json::from_str::<Order>(&text).ok()) {
        return Ok(with_cache_header("hit", order));
    }
    match db::find_order(&app.pool, &order_no).await? {
        Some(order) => {
            cache(&app, &order).await?;
            Ok(with_cache_header("miss", order))
        }
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no order `{order_no}`"),
        )),
    }
}

async fn delete_order(
    State(app): State<App>,
    Path(order_no): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = db::delete_order(&app.pool, &order_no).await?;
    let mut redis = app.redis.clone();
    let _: () = redis.del(cache_key(&order_no)).await?;
    if deleted {
        log!("orders", "deleted {order_no}");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no order `{order_no}`"),
        ))
    }
}

async fn health(State(app): State<App>) -> Response {
    let mut redis = app.redis.clone();
    let checks = [
        ("mysql", db::ping(&app.pool).await),
        (
            "redis",
            redis::cmd("PING")
                .query_async::<String>(&mut redis)
                .await
                .map(drop)
                .map_err(anyhow::Error::from),
        ),
        ("kafka", kafka::ping(&app.producer, &app.topic).await),
    ];
    let mut body = json!({ "status": "ok", "service": "orders" });
    let mut up = true;
    for (name, result) in checks {
        body[name] = match result {
            Ok(()) => json!("ok"),
            Err(e) => {
                up = false;
                json!(format!("down: {e:#}"))
            }
        };
    }
    if !up {
        body["status"] = json!("down");
    }
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The Redis key that caches an order.
pub fn cache_key(order_no: &str) -> String {
    format!("order:{order_no}")
}

async fn cache(app: &App, order: &Order) -> Result<(), ApiError> {
    let text = serde_json::to_string(order).context("encoding the order")?;
    let mut redis = app.redis.clone();
    let _: () = redis
        .set_ex(cache_key(&order.order_no), text, app.cache_ttl)
        .await?;
    Ok(())
}

fn with_cache_header(state: &'static str, order: Order) -> Response {
    ([(HeaderName::from_static("x-cache"), state)], Json(order)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_new_order(body.as_bytes()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(ApiError(_, msg)) => msg,
        }
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let ok = parse_new_order(br#"{"sku":"A-100","qty":2,"user":" ann "}"#)
            .map_err(|e| e.1)
            .expect("valid");
        assert_eq!(
            (ok.sku.as_str(), ok.qty, ok.user.as_str()),
            ("A-100", 2, "ann")
        );
        assert!(err("nope").starts_with("the body is not JSON"));
        assert!(err("[1]").contains("JSON object"));
        assert!(err(r#"{"qty":1,"user":"u"}"#).starts_with("`sku`"));
        assert!(err(r#"{"sku":"A","qty":0,"user":"u"}"#).starts_with("`qty`"));
        assert!(err(r#"{"sku":"A","qty":1.5,"user":"u"}"#).starts_with("`qty`"));
        assert!(err(r#"{"sku":"A","qty":"2","user":"u"}"#).starts_with("`qty`"));
        assert!(err(r#"{"sku":"A","qty":101,"user":"u"}"#).starts_with("`qty`"));
        assert!(err(r#"{"sku":"A","qty":1,"user":""}"#).starts_with("`user`"));
    }
}
