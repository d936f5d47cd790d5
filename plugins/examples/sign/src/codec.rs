//! Turning arguments into bytes and bytes into text: the message (`data`
//! with its `input` encoding, or `params` made canonical), fixed-size keys
//! written as hex, text or base64, and the `output` encodings.

use atf_sdk::{Call, KeywordError, KeywordResult, Value, json, type_name};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

pub(crate) const DATA_DOC: &str =
    "the message: text (objects and arrays are taken as compact JSON text)";
pub(crate) const INPUT_DOC: &str =
    "how `data` is written: `text` (UTF-8, default), `hex` or `base64`";
pub(crate) const OUTPUT_DOC: &str = "`hex` (default), `hex_upper` or `base64`";
pub(crate) const PARAMS_DOC: &str =
    "instead of `data`: an object signed as its sorted `key=value&...` text (see `sign.canonical`)";
pub(crate) const EXCLUDE_DOC: &str = "with `params`: keys left out (default [\"sign\"])";
pub(crate) const SKIP_EMPTY_DOC: &str =
    "with `params`: leave out null and empty values (default true)";

/// The message of a call: its bytes, and its text when it is text.
pub(crate) struct Message {
    pub(crate) bytes: Vec<u8>,
    pub(crate) text: Option<String>,
}

/// The message from `data` and `input`, or from `params` when `allow_params`.
pub(crate) fn message(call: &Call<'_>, allow_params: bool) -> Result<Message, KeywordError> {
    if allow_params && let Some(params) = call.arg("params") {
        if call.arg("data").is_some() {
            return Err("give either `data` or `params`, not both".into());
        }
        let text = canonical(call, params)?;
        return Ok(Message {
            bytes: text.clone().into_bytes(),
            text: Some(text),
        });
    }
    let data = match call.arg("data") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None if allow_params => return Err("argument `data` or `params` is required".into()),
        None => return Err("argument `data` is required".into()),
    };
    let input = call.str_arg("input")?.unwrap_or("text");
    decode(&data, input, "data").map(|bytes| {
        let text = (input == "text").then(|| data.clone());
        Message { bytes, text }
    })
}

/// Decodes `text` written as `encoding` (`text`, `hex` or `base64`).
pub(crate) fn decode(text: &str, encoding: &str, what: &str) -> Result<Vec<u8>, KeywordError> {
    match encoding {
        "text" => Ok(text.as_bytes().to_vec()),
        "hex" => hex::decode(text.trim())
            .map_err(|e| KeywordError::new(format!("`{what}` is not valid hex: {e}"))),
        "base64" => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            BASE64
                .decode(compact)
                .map_err(|e| KeywordError::new(format!("`{what}` is not valid base64: {e}")))
        }
        other => Err(KeywordError::new(format!(
            "unknown encoding `{other}` for `{what}`: use `text`, `hex` or `base64`"
        ))),
    }
}

/// Encodes `bytes` as the `output` argument asks (`default` when absent).
pub(crate) fn encode(call: &Call<'_>, bytes: &[u8], default: &str) -> Result<String, KeywordError> {
    match call.str_arg("output")?.unwrap_or(default) {
        "hex" => Ok(hex::encode(bytes)),
        "hex_upper" => Ok(hex::encode_upper(bytes)),
        "base64" => Ok(BASE64.encode(bytes)),
        "text" => String::from_utf8(bytes.to_vec()).map_err(|_| {
            KeywordError::new("the result is not UTF-8 text: ask for `output`: `hex` or `base64`")
        }),
        other => Err(KeywordError::new(format!(
            "unknown `output` `{other}`: use `hex`, `hex_upper`, `base64`{}",
            if default == "text" { " or `text`" } else { "" }
        ))),
    }
}

/// A key or IV of exactly `N` bytes: 2×`N` hex digits or `N` bytes of
/// text (an explicit `<name>_encoding` of `hex`, `text` or `base64` wins).
pub(crate) fn fixed_bytes<const N: usize>(
    call: &Call<'_>,
    name: &str,
) -> Result<[u8; N], KeywordError> {
    let text = call.required_str(name)?;
    let encoding = call.str_arg(&format!("{name}_encoding"))?;
    let bytes = match encoding {
        Some(enc) => decode(text, enc, name)?,
        None if text.len() == 2 * N && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            decode(text, "hex", name)?
        }
        None => text.as_bytes().to_vec(),
    };
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        KeywordError::new(format!(
            "`{name}` must be {N} bytes: {} hex digits or {N} characters of text (it is {} bytes)",
            2 * N,
            bytes.len()
        ))
    })
}

/// `sign.canonical`.
pub(crate) fn canonical_keyword(call: &Call<'_>) -> KeywordResult {
    let params = call
        .arg("params")
        .ok_or_else(|| KeywordError::new("argument `params` is required"))?;
    Ok(json!({ "text": canonical(call, params)? }))
}

/// `params` as `k1=v1&k2=v2`: keys in byte order, `exclude`d keys and
/// (unless `skip_empty` is false) null and empty values left out; strings
/// as they are, other values as compact JSON.
pub(crate) fn canonical(call: &Call<'_>, params: &Value) -> Result<String, KeywordError> {
    let Value::Object(map) = params else {
        return Err(KeywordError::new(format!(
            "argument `params` must be an object, got {}",
            type_name(params)
        )));
    };
    let exclude: Vec<&str> = match call.arg("exclude") {
        None => vec!["sign"],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| KeywordError::new("`exclude` must be a list of key names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`exclude` must be a list of key names".into()),
    };
    let skip_empty = match call.arg("skip_empty") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`skip_empty` must be true or false".into()),
    };
    let mut pairs: Vec<(&String, String)> = map
        .iter()
        .filter(|(k, _)| !exclude.contains(&k.as_str()))
        .filter(|(_, v)| !(skip_empty && (v.is_null() || v.as_str() == Some(""))))
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let parts: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(parts.join("&"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use atf_sdk::NoHost;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Runs `f` with `args` as a plugin call would.
    pub(crate) fn run(f: fn(&Call<'_>) -> KeywordResult, args: Value) -> KeywordResult {
        run_in(f, args, Path::new("."))
    }

    pub(crate) fn run_in(
        f: fn(&Call<'_>) -> KeywordResult,
        args: Value,
        base_dir: &Path,
    ) -> KeywordResult {
        let call = Call {
            args: &args,
            deadline: Instant::now() + Duration::from_secs(10),
            case_start_ms: 0,
            base_dir,
            host: &NoHost,
        };
        f(&call)
    }

    #[test]
    fn canonical_text() {
        let out = run(
            canonical_keyword,
            json!({"params": {"b": 2, "a": "x y", "sign": "zz", "empty": "", "none": null, "C": true, "o": {"k": [1]}}}),
        )
        .unwrap();
        assert_eq!(out["text"], r#"C=true&a=x y&b=2&o={"k":[1]}"#);
        let out = run(
            canonical_keyword,
            json!({"params": {"b": "", "sign": "s", "sign_type": "RSA2"}, "exclude": ["sign_type"], "skip_empty": false}),
        )
        .unwrap();
        assert_eq!(out["text"], "b=&sign=s");
        assert!(run(canonical_keyword, json!({"params": [1]})).is_err());
        assert!(run(canonical_keyword, json!({"params": {}, "exclude": "sign"})).is_err());
        assert!(run(canonical_keyword, json!({})).is_err());
    }

    #[test]
    fn keys_and_encodings() {
        fn key(args: Value) -> Result<[u8; 4], KeywordError> {
            let call = Call {
                args: &args,
                deadline: Instant::now(),
                case_start_ms: 0,
                base_dir: Path::new("."),
                host: &NoHost,
            };
            fixed_bytes::<4>(&call, "key")
        }
        assert_eq!(key(json!({"key": "0a0B0c0d"})).unwrap(), [10, 11, 12, 13]);
        assert_eq!(&key(json!({"key": "abcd"})).unwrap(), b"abcd");
        assert_eq!(
            key(json!({"key": "0a0b0c0d", "key_encoding": "text"}))
                .unwrap_err()
                .message,
            "`key` must be 4 bytes: 8 hex digits or 4 characters of text (it is 8 bytes)"
        );
        assert_eq!(
            key(json!({"key": "AQIDBA==", "key_encoding": "base64"})).unwrap(),
            [1, 2, 3, 4]
        );
        assert!(key(json!({"key": "abc"})).is_err());
        assert!(key(json!({})).is_err());
        assert!(decode("zz", "hex", "data").is_err());
        assert!(decode("!!", "base64", "data").is_err());
        assert!(decode("x", "rot13", "data").is_err());
    }
}
