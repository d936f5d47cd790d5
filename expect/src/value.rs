//! Value helpers shared by the matchers: deep equality where numbers
//! compare by value (`1 == 1.0`, also inside arrays and objects, object key
//! order ignored), exact ordering of numbers, JSON type names and short
//! renderings of values for failure messages.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Deep equality; numbers by value, object key order ignored.
pub fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| deep_eq(xv, yv)))
        }
        _ => a == b,
    }
}

/// The exact order of two JSON numbers (integers beyond 2^53 included).
pub fn num_cmp(a: &Number, b: &Number) -> Ordering {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => int_float_cmp(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => int_float_cmp(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Compares an integer with a float without losing precision: an integral
/// float within range is compared as an integer; otherwise the float is
/// either non-integral (so below 2^53, where the integer's rounding cannot
/// change the order) or huge.
fn int_float_cmp(i: i128, f: f64) -> Ordering {
    const LIMIT: f64 = 1.0e38;
    if f.fract() == 0.0 && f.abs() < LIMIT {
        i.cmp(&(f as i128))
    } else {
        (i as f64).partial_cmp(&f).unwrap_or(Ordering::Equal)
    }
}

/// Whether a number is an integer by value (`3` and `3.0` are).
pub fn is_integer(n: &Number) -> bool {
    as_int(n).is_some()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

pub use atf_sdk::type_name;

/// A value with its type for messages: `string "abc"`, `number 3`, `null`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        _ => format!("{} {}", type_name(v), show(v)),
    }
}

/// Longest rendering of a value in a message, in characters.
const MAX_SHOWN: usize = 120;

/// Compact JSON of `v` for a message, cut to a readable length.
pub fn show(v: &Value) -> String {
    cut(v.to_string())
}

/// `s` cut to [`MAX_SHOWN`] characters with an ellipsis.
pub fn cut(s: String) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// The text of a scalar for substring and regex matching: strings as they
/// are, numbers as written in JSON.
pub fn text_of(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_by_value() {
        assert!(deep_eq(&json!(1), &json!(1.0)));
        assert!(deep_eq(&json!(-0.0), &json!(0)));
        assert!(!deep_eq(&json!(1), &json!(1.5)));
        assert!(!deep_eq(&json!(1), &json!("1")));
        assert!(deep_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!deep_eq(
            &json!(9007199254740993u64),
            &json!(9007199254740992.0)
        ));
        assert!(deep_eq(
            &json!(9007199254740992u64),
            &json!(9007199254740992.0)
        ));
    }

    #[test]
    fn nested_numbers_and_key_order() {
        assert!(deep_eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(deep_eq(
            &json!({"a": 1, "b": [2]}),
            &json!({"b": [2.0], "a": 1.0})
        ));
        assert!(!deep_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!deep_eq(&json!({"a": 1, "b": 2}), &json!({"a": 1, "c": 2})));
        assert!(!deep_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!deep_eq(&json!([1]), &json!([1, 1])));
        assert!(deep_eq(&json!(null), &json!(null)));
        assert!(!deep_eq(&json!(null), &json!(false)));
    }

    #[test]
    fn number_order() {
        let n = |v: Value| v.as_number().unwrap().clone();
        assert_eq!(num_cmp(&n(json!(2)), &n(json!(10))), Ordering::Less);
        assert_eq!(num_cmp(&n(json!(2.5)), &n(json!(2))), Ordering::Greater);
        assert_eq!(num_cmp(&n(json!(-1)), &n(json!(u64::MAX))), Ordering::Less);
        assert_eq!(
            num_cmp(&n(json!(1e300)), &n(json!(i64::MAX))),
            Ordering::Greater
        );
        assert_eq!(
            num_cmp(&n(json!(-1e300)), &n(json!(i64::MIN))),
            Ordering::Less
        );
        assert_eq!(
            num_cmp(
                &n(json!(9007199254740993u64)),
                &n(json!(9007199254740992.0))
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn integers() {
        assert!(is_integer(json!(3).as_number().unwrap()));
        assert!(is_integer(json!(3.0).as_number().unwrap()));
        assert!(!is_integer(json!(3.5).as_number().unwrap()));
    }

    #[test]
    fn showing() {
        assert_eq!(show(&json!({"a": "x"})), r#"{"a":"x"}"#);
        let long = show(&json!("é".repeat(300)));
        assert_eq!(long.chars().count(), MAX_SHOWN + 1);
        assert!(long.ends_with('…'));
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!("a")), "string \"a\"");
        assert_eq!(describe(&json!([1])), "array [1]");
        assert_eq!(text_of(&json!(12)).unwrap(), "12");
        assert_eq!(text_of(&json!(1.5)).unwrap(), "1.5");
        assert!(text_of(&json!(true)).is_none());
    }
}
