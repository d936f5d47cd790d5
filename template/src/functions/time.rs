//! Time functions: `now([format], [offset])` is the local time as RFC 3339
//! (to the second, with the UTC offset) or in a chrono strftime `format`;
//! `timestamp([offset])` and `timestamp_ms([offset])` are Unix time in
//! seconds and milliseconds, as numbers. An `offset` shifts the time: a sign
//! (optional, `+` by default) and one or more amounts with a unit, `ms`, `s`,
//! `m`, `h`, `d` or `w` — `-1d`, `+2h`, `-30m`, `+1h30m`. An empty format
//! means RFC 3339, so `now('', '-1d')` is yesterday in RFC 3339.

use std::fmt::Write as _;

use chrono::format::StrftimeItems;
use chrono::{DateTime, Local, SecondsFormat, TimeDelta, TimeZone};
use serde_json::Value;

use super::{Context, Function, opt_text};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "now",
        signature: "now([format], [offset])",
        min_args: 0,
        max_args: Some(2),
        call: now,
    },
    Function {
        name: "timestamp",
        signature: "timestamp([offset])",
        min_args: 0,
        max_args: Some(1),
        call: timestamp,
    },
    Function {
        name: "timestamp_ms",
        signature: "timestamp_ms([offset])",
        min_args: 0,
        max_args: Some(1),
        call: timestamp_ms,
    },
];

fn now(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let format = opt_text(args, 0, "format")?.unwrap_or_default();
    let offset = opt_text(args, 1, "offset")?;
    let t = shifted(Local::now(), offset.as_deref())?;
    format_time(&t, &format).map(Value::String)
}

fn timestamp(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let offset = opt_text(args, 0, "offset")?;
    Ok(shifted(Local::now(), offset.as_deref())?.timestamp().into())
}

fn timestamp_ms(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let offset = opt_text(args, 0, "offset")?;
    Ok(shifted(Local::now(), offset.as_deref())?
        .timestamp_millis()
        .into())
}

/// `t` moved by the offset text, when there is one.
fn shifted<Tz: TimeZone>(t: DateTime<Tz>, offset: Option<&str>) -> Result<DateTime<Tz>, String> {
    let Some(offset) = offset else {
        return Ok(t);
    };
    let delta = parse_offset(offset)?;
    t.checked_add_signed(delta)
        .ok_or_else(|| format!("offset `{offset}` moves the time out of range"))
}

/// `t` in the strftime `format`; RFC 3339 when `format` is empty. Never
/// panics on a bad format (chrono's `to_string` would).
fn format_time<Tz: TimeZone>(t: &DateTime<Tz>, format: &str) -> Result<String, String>
where
    Tz::Offset: std::fmt::Display,
{
    if format.is_empty() {
        return Ok(t.to_rfc3339_opts(SecondsFormat::Secs, false));
    }
    let bad = || format!("invalid time format `{format}` (see chrono's strftime specifiers)");
    let items = StrftimeItems::new(format).parse().map_err(|_| bad())?;
    let mut out = String::new();
    write!(out, "{}", t.format_with_items(items.iter())).map_err(|_| bad())?;
    Ok(out)
}

/// Parses `[+-]N unit [N unit ...]` into a time span.
pub(super) fn parse_offset(text: &str) -> Result<TimeDelta, String> {
    let bad = |why: &str| {
        format!("invalid offset `{text}`: {why} (write e.g. `-1d`, `+2h`, `-30m`, `+1h30m`)")
    };
    let trimmed = text.trim();
    let (negative, mut rest) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if rest.is_empty() {
        return Err(bad("no amount"));
    }
    let mut total_ms: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let amount: i64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let (unit_ms, unit_len): (i64, usize) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.as_bytes().first() {
                Some(b's') => (1_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                Some(b'w') => (604_800_000, 1),
                _ => return Err(bad("expected a unit: ms, s, m, h, d or w")),
            }
        };
        rest = &rest[unit_len..];
        total_ms = amount
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| bad("too large"))?;
    }
    if negative {
        total_ms = -total_ms;
    }
    TimeDelta::try_milliseconds(total_ms).ok_or_else(|| bad("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn call(
        f: fn(&Context<'_>, &[Value]) -> Result<Value, String>,
        args: &[Value],
    ) -> Result<Value, String> {
        f(
            &Context {
                base_dir: Path::new("."),
            },
            args,
        )
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+2h").unwrap(), TimeDelta::hours(2));
        assert_eq!(parse_offset("-30m").unwrap(), TimeDelta::minutes(-30));
        assert_eq!(parse_offset("+1d").unwrap(), TimeDelta::days(1));
        assert_eq!(parse_offset("+10s").unwrap(), TimeDelta::seconds(10));
        assert_eq!(parse_offset("-1w").unwrap(), TimeDelta::weeks(-1));
        assert_eq!(parse_offset("5d").unwrap(), TimeDelta::days(5));
        assert_eq!(parse_offset("250ms").unwrap(), TimeDelta::milliseconds(250));
        assert_eq!(parse_offset("-1h30m").unwrap(), TimeDelta::minutes(-90));
        assert_eq!(parse_offset(" +0s ").unwrap(), TimeDelta::zero());
    }

    #[test]
    fn bad_offsets() {
        for bad in [
            "",
            "+",
            "-",
            "2",
            "2x",
            "h",
            "+-1d",
            "1d+",
            "1 d",
            "99999999999999999999d",
            "9223372036854775807w",
            "é",
        ] {
            let err = parse_offset(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid offset `{bad}`")), "{err}");
        }
    }

    #[test]
    fn now_is_rfc3339_local_to_the_second() {
        let before = Local::now().timestamp();
        let v = call(now, &[]).unwrap();
        let after = Local::now().timestamp();
        let text = v.as_str().unwrap();
        let parsed = DateTime::parse_from_rfc3339(text).unwrap();
        assert!(
            parsed.timestamp() >= before && parsed.timestamp() <= after,
            "{text}"
        );
        assert_eq!(text.len(), "2024-01-02T03:04:05+00:00".len(), "{text}");
        assert_eq!(
            parsed.offset().local_minus_utc(),
            Local::now().offset().local_minus_utc()
        );
    }

    #[test]
    fn now_with_format_and_offset() {
        let fmt = "%Y-%m-%d %H:%M";
        let before = Local::now();
        let v = call(now, &[json!(fmt)]).unwrap();
        let after = Local::now();
        let allowed = [
            before.format(fmt).to_string(),
            after.format(fmt).to_string(),
        ];
        assert!(allowed.contains(&v.as_str().unwrap().to_string()), "{v}");

        let before = Local::now() - TimeDelta::days(1);
        let v = call(now, &[json!("%Y-%m-%d"), json!("-1d")]).unwrap();
        let after = Local::now() - TimeDelta::days(1);
        let allowed = [
            before.format("%Y-%m-%d").to_string(),
            after.format("%Y-%m-%d").to_string(),
        ];
        assert!(allowed.contains(&v.as_str().unwrap().to_string()), "{v}");

        // An empty format is RFC 3339, shifted.
        let v = call(now, &[json!(""), json!("+2h")]).unwrap();
        let t = DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        let diff = t.timestamp() - Local::now().timestamp();
        assert!((7199..=7200).contains(&diff), "{diff}");
    }

    #[test]
    fn fixed_time_formats_exactly() {
        let t = chrono::Utc
            .with_ymd_and_hms(2024, 2, 29, 23, 30, 5)
            .unwrap();
        assert_eq!(format_time(&t, "").unwrap(), "2024-02-29T23:30:05+00:00");
        assert_eq!(
            format_time(&t, "%Y-%m-%d %H:%M:%S").unwrap(),
            "2024-02-29 23:30:05"
        );
        let moved = shifted(t, Some("+1h")).unwrap();
        assert_eq!(
            format_time(&moved, "%Y-%m-%d %H:%M").unwrap(),
            "2024-03-01 00:30"
        );
        assert_eq!(format_time(&t, "literal").unwrap(), "literal");
    }

    #[test]
    fn bad_format_is_an_error_not_a_panic() {
        for bad in ["%", "%Q", "%Y-%", "%.9"] {
            let err = call(now, &[json!(bad)]).unwrap_err();
            assert_eq!(
                err,
                format!("invalid time format `{bad}` (see chrono's strftime specifiers)")
            );
        }
        assert_eq!(
            call(now, &[json!(["x"])]).unwrap_err(),
            "argument 1 (format) must be text, got an array"
        );
        assert!(
            call(now, &[json!("%Y"), json!("soon")])
                .unwrap_err()
                .starts_with("invalid offset `soon`")
        );
        let huge = call(now, &[json!("%Y"), json!("+9999999999w")]).unwrap_err();
        assert!(
            huge.contains("too large") || huge.contains("out of range"),
            "{huge}"
        );
    }

    #[test]
    fn timestamps() {
        let before = chrono::Utc::now().timestamp();
        let s = call(timestamp, &[]).unwrap().as_i64().unwrap();
        let ms = call(timestamp_ms, &[]).unwrap().as_i64().unwrap();
        let after = chrono::Utc::now().timestamp();
        assert!(s >= before && s <= after);
        assert!(ms / 1000 >= before && ms / 1000 <= after);
        let tomorrow = call(timestamp, &[json!("+1d")]).unwrap().as_i64().unwrap();
        assert!(
            (86_400..=86_401).contains(&(tomorrow - s)),
            "{}",
            tomorrow - s
        );
        let earlier = call(timestamp_ms, &[json!("-500ms")])
            .unwrap()
            .as_i64()
            .unwrap();
        assert!(earlier < ms + 1 - 400, "{earlier} {ms}");
    }
}
