//! AMQP message fields and JSON, both ways: `headers` (an AMQP field table)
//! and `properties` of `amqp.publish`, and a delivered message as the JSON
//! that `match` is checked against and `amqp.consume` returns.
//!
//! Header values: text, booleans, integers (as 64-bit integers), other
//! numbers (as doubles), `null` (void), lists and objects (nested arrays and
//! tables). Coming back, every AMQP field type maps to its JSON kin; byte
//! arrays and non-UTF-8 long strings are Base64, decimals exact text.

use atf_sdk::{Value, json, type_name};
use base64::Engine as _;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::Map;

/// The properties `amqp.publish` accepts, for messages.
pub(crate) const PROPERTY_NAMES: &str = "content_type, content_encoding, correlation_id, \
     reply_to, expiration, message_id, timestamp, type, user_id, app_id, cluster_id, priority, \
     delivery_mode";

/// A short string (names, routing keys, text properties): at most 255 bytes.
pub(crate) fn short(what: &str, s: &str) -> Result<ShortString, String> {
    ShortString::try_new(s)
        .map_err(|_| format!("{what} is {} bytes long; AMQP allows at most 255", s.len()))
}

/// A JSON value as an AMQP field value.
pub(crate) fn field_value(v: &Value) -> Result<AMQPValue, String> {
    Ok(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => {
            let mut arr = FieldArray::default();
            for item in items {
                arr.push(field_value(item)?);
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Object(map) => AMQPValue::FieldTable(table(map)?),
    })
}

/// A JSON object as an AMQP field table (`headers`).
pub(crate) fn table(map: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(short(&format!("header name `{k}`"), k)?, field_value(v)?);
    }
    Ok(t)
}

/// Bytes as text when they are UTF-8, else Base64.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// An AMQP field value as JSON.
pub(crate) fn field_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(f) => float(f.to_string().parse().unwrap_or(f64::from(*f))),
        AMQPValue::Double(f) => float(*f),
        AMQPValue::DecimalValue(d) => Value::String(decimal(d.value, d.scale)),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::String(text_of(s.as_bytes())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(field_json).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => table_json(t),
        AMQPValue::ByteArray(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        AMQPValue::Void => Value::Null,
    }
}

/// `value / 10^scale` as exact text.
fn decimal(value: u32, scale: u8) -> String {
    let digits = value.to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

/// An AMQP field table as a JSON object.
pub(crate) fn table_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), field_json(v)))
            .collect(),
    )
}

/// Applies the `properties` object of `amqp.publish` to `props`.
pub(crate) fn properties(
    mut props: BasicProperties,
    map: &Map<String, Value>,
) -> Result<BasicProperties, String> {
    for (k, v) in map {
        let text = |v: &Value| -> Result<ShortString, String> {
            match v {
                Value::String(s) => short(&format!("property `{k}`"), s),
                other => Err(format!(
                    "property `{k}` must be a string, got {}",
                    type_name(other)
                )),
            }
        };
        let small = |v: &Value, max: u64| -> Result<u8, String> {
            v.as_u64()
                .filter(|n| *n <= max)
                .map(|n| n as u8)
                .ok_or_else(|| {
                    format!("property `{k}` must be an integer from 0 to {max}, got {v}")
                })
        };
        props = match k.as_str() {
            "content_type" => props.with_content_type(text(v)?),
            "content_encoding" => props.with_content_encoding(text(v)?),
            "correlation_id" => props.with_correlation_id(text(v)?),
            "reply_to" => props.with_reply_to(text(v)?),
            "message_id" => props.with_message_id(text(v)?),
            "type" => props.with_type(text(v)?),
            "user_id" => props.with_user_id(text(v)?),
            "app_id" => props.with_app_id(text(v)?),
            "cluster_id" => props.with_cluster_id(text(v)?),
            // Milliseconds; AMQP carries them as text.
            "expiration" => match v {
                Value::Number(n) if n.as_u64().is_some() => {
                    props.with_expiration(short("expiration", &n.to_string())?)
                }
                other => props.with_expiration(text(other)?),
            },
            "timestamp" => match v.as_u64() {
                Some(secs) => props.with_timestamp(secs),
                None => {
                    return Err(format!(
                        "property `timestamp` must be seconds since the Unix epoch, got {v}"
                    ));
                }
            },
            "priority" => props.with_priority(small(v, 255)?),
            "delivery_mode" => match small(v, 2)? {
                m @ (1 | 2) => props.with_delivery_mode(m),
                _ => {
                    return Err(
                        "property `delivery_mode` is 1 (transient) or 2 (persistent)".into(),
                    );
                }
            },
            "headers" => {
                return Err("give headers as the step's `headers` argument, not a property".into());
            }
            other => {
                return Err(format!(
                    "unknown property `{other}`; known: {PROPERTY_NAMES}"
                ));
            }
        };
    }
    Ok(props)
}

/// The properties of a delivered message that are set, as an object.
pub(crate) fn properties_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut text = |name: &str, v: &Option<ShortString>| {
        if let Some(s) = v {
            m.insert(name.into(), Value::String(s.as_str().to_string()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), json!(t));
    }
    if let Some(n) = p.priority() {
        m.insert("priority".into(), json!(n));
    }
    if let Some(n) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(n));
    }
    Value::Object(m)
}

/// A body as JSON: parsed when it is JSON, else text, else Base64.
pub(crate) fn body_json(bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(_) => Value::String(text_of(bytes)),
    }
}

/// A message as `amqp.consume` returns it.
pub(crate) fn message_json(
    exchange: &str,
    routing_key: &str,
    redelivered: bool,
    props: &BasicProperties,
    data: &[u8],
) -> Value {
    json!({
        "body": body_json(data),
        "exchange": exchange,
        "routing_key": routing_key,
        "headers": props.headers().as_ref().map_or_else(|| json!({}), table_json),
        "properties": properties_json(props),
        "redelivered": redelivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_and_come_back_as_the_same_json() {
        let h = json!({"trace": "abc", "n": 7, "big": -9_000_000_000i64, "ratio": 0.5,
                       "ok": true, "none": null, "list": [1, "x"], "nested": {"a": "b"}});
        let t = table(h.as_object().unwrap()).unwrap();
        assert_eq!(table_json(&t), h);
        assert!(matches!(
            t.inner().get("n"),
            Some(AMQPValue::LongLongInt(7))
        ));
    }

    #[test]
    fn every_field_type_has_a_json_kin() {
        use lapin::types::{ByteArray, DecimalValue};
        assert_eq!(field_json(&AMQPValue::ShortInt(-3)), json!(-3));
        assert_eq!(field_json(&AMQPValue::Float(1.1)), json!(1.1));
        assert_eq!(field_json(&AMQPValue::Double(f64::NAN)), json!("NaN"));
        assert_eq!(
            field_json(&AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 1250
            })),
            json!("12.50")
        );
        assert_eq!(
            field_json(&AMQPValue::DecimalValue(DecimalValue {
                scale: 3,
                value: 5
            })),
            json!("0.005")
        );
        assert_eq!(
            field_json(&AMQPValue::LongString(LongString::from(vec![0xff, 0]))),
            json!("/wA=")
        );
        assert_eq!(
            field_json(&AMQPValue::ByteArray(ByteArray::from(vec![1u8, 2]))),
            json!("AQI=")
        );
        assert_eq!(
            field_json(&AMQPValue::Timestamp(1700000000)),
            json!(1700000000)
        );
    }

    #[test]
    fn properties_are_checked_and_set() {
        let p = properties(
            BasicProperties::default(),
            json!({"content_type": "application/json", "correlation_id": "c-1",
                   "expiration": 60000, "priority": 5, "delivery_mode": 2, "timestamp": 1700000000,
                   "type": "order.created"})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            properties_json(&p),
            json!({"content_type": "application/json", "correlation_id": "c-1",
                   "expiration": "60000", "type": "order.created", "timestamp": 1700000000,
                   "priority": 5, "delivery_mode": 2})
        );
        let err = |v: Value| {
            properties(BasicProperties::default(), v.as_object().unwrap())
                .err()
                .unwrap()
        };
        assert!(err(json!({"colour": "red"})).contains("unknown property `colour`"));
        assert!(err(json!({"priority": 300})).contains("0 to 255"));
        assert!(err(json!({"delivery_mode": 3})).contains("delivery_mode"));
        assert!(err(json!({"message_id": "x".repeat(300)})).contains("at most 255"));
        assert!(err(json!({"correlation_id": 5})).contains("must be a string"));
    }

    #[test]
    fn bodies_are_json_text_or_base64() {
        assert_eq!(body_json(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(body_json(b"plain"), json!("plain"));
        assert_eq!(body_json(&[0xff, 0xfe]), json!("//4="));
        assert_eq!(body_json(b""), json!(""));
    }
}
