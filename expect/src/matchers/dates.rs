//! Dates: `$before`, `$after` and `$within`, with `$date_format` saying how
//! the value is written.
//!
//! A date is a text or a number. A number is Unix time: seconds, or
//! milliseconds when its size is 10^11 or more (no API writes seconds past
//! the year 5000). A text is read with `$date_format` when the object has
//! one (strftime, e.g. `%d/%m/%Y %H:%M`), else as RFC 3339
//! (`2026-11-30T08:00:00Z`), RFC 2822 (`Mon, 30 Nov 2026 08:00:00 GMT`, as
//! HTTP's `Date` and `Expires` headers write it), `YYYY-MM-DD HH:MM:SS[.f]`
//! (SQL) or `YYYY-MM-DD` (midnight). A date without a zone is local time,
//! as `now('%Y-%m-%d %H:%M:%S')` writes it.
//!
//! An operand may also be `now`, or `now` shifted by a span: `-1d`, `+2h`,
//! `now-30m` (units ms, s, m, h, d). It is taken when the expectation is
//! checked, so `{"$after": "-1d"}` reads "within the last day" and
//! `{"$before": "now"}` "not in the future". `$within: "5m"` holds when the
//! value is at most five minutes from now, either way.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::{Mode, Op, Verdict, is_placeholder};
use crate::value::{describe, show};

/// The operators of this family.
pub const NAMES: [&str; 4] = ["$before", "$after", "$within", "$date_format"];

/// A point in time as an operand.
#[derive(Debug, Clone)]
enum When {
    /// A fixed instant, ms since the epoch.
    At(i64),
    /// Now, shifted by this many ms.
    Now(i64),
}

impl When {
    fn ms(&self, now: i64) -> i64 {
        match self {
            When::At(ms) => *ms,
            When::Now(shift) => now.saturating_add(*shift),
        }
    }
}

/// The date operators of one matcher object, compiled together.
#[derive(Debug, Default)]
pub struct Dates {
    format: Option<String>,
    before: Option<(When, Value)>,
    after: Option<(When, Value)>,
    within: Option<(i64, Value)>,
}

/// Compiles the date operators among `ops` (name, operand); `None` when
/// there are none.
pub fn compile<'v>(
    ops: impl Iterator<Item = (&'v str, &'v Value)>,
    mode: Mode,
) -> Result<Option<Op>, String> {
    let ops: Vec<(&str, &Value)> = ops.collect();
    if ops.is_empty() {
        return Ok(None);
    }
    if mode == Mode::Lenient && ops.iter().any(|(_, v)| is_placeholder(v)) {
        return Ok(Some(Op::Deferred));
    }
    let mut dates = Dates::default();
    if let Some((_, f)) = ops.iter().find(|(n, _)| *n == "$date_format") {
        match f {
            Value::String(f) if valid_format(f) => dates.format = Some(f.clone()),
            Value::String(f) => return Err(format!("$date_format `{f}` is not a strftime format")),
            other => return Err(format!("$date_format takes a string, got {}", show(other))),
        }
    }
    for (name, operand) in ops {
        match name {
            "$before" => dates.before = Some((dates.when(name, operand)?, operand.clone())),
            "$after" => dates.after = Some((dates.when(name, operand)?, operand.clone())),
            "$within" => {
                let span = match operand {
                    Value::String(s) => atf_sdk::parse_duration_str(s),
                    Value::Number(_) => atf_sdk::parse_duration(operand),
                    other => Err(format!("takes a span such as \"5m\", got {}", show(other))),
                }
                .map_err(|e| format!("$within: {e}"))?;
                let ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
                dates.within = Some((ms, operand.clone()));
            }
            _ => {}
        }
    }
    if dates.before.is_none() && dates.after.is_none() && dates.within.is_none() {
        return Err("$date_format goes with $before, $after or $within".into());
    }
    Ok(Some(Op::Dates(Box::new(dates))))
}

/// Whether chrono accepts `f` as a format.
fn valid_format(f: &str) -> bool {
    chrono::format::StrftimeItems::new(f)
        .parse()
        .is_ok_and(|items| !items.is_empty())
}

impl Dates {
    /// An operand of `$before`/`$after`.
    fn when(&self, name: &str, v: &Value) -> Result<When, String> {
        if let Value::String(s) = v {
            let t = s.trim();
            let shift = t.strip_prefix("now").map(str::trim);
            let relative = match shift {
                Some("") => Some(Ok(0)),
                Some(rest) => Some(signed_span(rest)),
                None if t.starts_with(['+', '-']) => Some(signed_span(t)),
                None => None,
            };
            if let Some(r) = relative {
                return r.map(When::Now).map_err(|e| format!("{name}: {e}"));
            }
        }
        self.instant(v)
            .map(When::At)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// The instant a value writes, ms since the epoch.
    fn instant(&self, v: &Value) -> Result<i64, String> {
        match v {
            Value::Number(n) => {
                let Some(x) = n.as_f64().filter(|x| x.is_finite()) else {
                    return Err(format!("{n} is not a time"));
                };
                let ms = if x.abs() >= 1e11 { x } else { x * 1000.0 };
                if ms.abs() > 8.64e15 {
                    return Err(format!("{n} is out of the range of dates"));
                }
                Ok(ms as i64)
            }
            Value::String(s) => parse_text(s.trim(), self.format.as_deref()),
            other => Err(format!("expected a date, got {}", describe(other))),
        }
    }

    /// Checks a present value.
    pub fn eval(&self, got: &Value) -> Verdict {
        let at = match self.instant(got) {
            Ok(ms) => ms,
            Err(e) => return Verdict::Fail(e),
        };
        let now = Utc::now().timestamp_millis();
        let mut fails = Vec::new();
        if let Some((when, written)) = &self.before {
            let bound = when.ms(now);
            if at >= bound {
                fails.push(format!(
                    "expected a date before {} ({}), got {}",
                    show(written),
                    rfc3339(bound),
                    show(got)
                ));
            }
        }
        if let Some((when, written)) = &self.after {
            let bound = when.ms(now);
            if at <= bound {
                fails.push(format!(
                    "expected a date after {} ({}), got {}",
                    show(written),
                    rfc3339(bound),
                    show(got)
                ));
            }
        }
        if let Some((span, written)) = &self.within
            && at.abs_diff(now) > span.unsigned_abs()
        {
            fails.push(format!(
                "expected a date within {} of now ({}), got {} ({} ms away)",
                show(written),
                rfc3339(now),
                show(got),
                at.abs_diff(now)
            ));
        }
        if fails.is_empty() {
            Verdict::Hold
        } else {
            Verdict::Fail(fails.join("; "))
        }
    }
}

/// `-1d`, `+2h30m`: a signed span in ms.
fn signed_span(text: &str) -> Result<i64, String> {
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => return Err(format!("`{text}`: write now, now-1d, -1d or +2h")),
    };
    let span = atf_sdk::parse_duration_str(rest.trim())?;
    Ok(sign * i64::try_from(span.as_millis()).unwrap_or(i64::MAX))
}

/// A date text: with `format` when given, else one of the common forms.
fn parse_text(s: &str, format: Option<&str>) -> Result<i64, String> {
    if let Some(f) = format {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.timestamp_millis());
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local_ms(t);
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local_ms(d.and_hms_opt(0, 0, 0).unwrap_or_default());
        }
        return Err(format!("`{s}` is not a date written as `{f}`"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Ok(t.timestamp_millis());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local_ms(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local_ms(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    Err(format!(
        "`{s}` is not a date (RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`; \
         $date_format reads others)"
    ))
}

/// A local date and time as ms since the epoch (the earlier of two, in a
/// daylight-saving fold).
fn local_ms(t: NaiveDateTime) -> Result<i64, String> {
    Local
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{t} does not exist in the local time zone"))
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn dates_compare_with_fixed_instants_in_any_common_form() {
        hold(
            json!({"$before": "2030-01-01T00:00:00Z"}),
            json!("2026-11-30T08:00:00Z"),
        );
        hold(
            json!({"$after": "2026-01-01"}),
            json!("Mon, 30 Nov 2026 08:00:00 GMT"),
        );
        hold(
            json!({"$after": 1_700_000_000}),
            json!(1_800_000_000_000i64),
        );
        hold(
            json!({"$after": "2026-11-30 07:59:59", "$before": "2026-11-30 08:00:01"}),
            json!("2026-11-30 08:00:00.250"),
        );
        fail(
            json!({"$before": "2026-01-01T00:00:00Z"}),
            json!("2026-11-30T08:00:00Z"),
            "expected a date before \"2026-01-01T00:00:00Z\" (2026-01-01T00:00:00.000Z), \
             got \"2026-11-30T08:00:00Z\"",
        );
    }

    #[test]
    fn relative_operands_are_taken_from_now() {
        let now = chrono::Utc::now();
        let an_hour_ago = (now - chrono::TimeDelta::hours(1)).to_rfc3339();
        hold(
            json!({"$after": "-1d", "$before": "now"}),
            json!(an_hour_ago),
        );
        hold(json!({"$after": "now-2h"}), json!(an_hour_ago));
        hold(json!({"$within": "2h"}), json!(an_hour_ago));
        hold(json!({"$within": "1m"}), json!(now.timestamp()));
        let verdict = run(&json!({"$within": "30m"}), Some(&json!(an_hour_ago)));
        assert!(
            matches!(&verdict, super::Verdict::Fail(m) if m.contains("within \"30m\" of now")),
            "{verdict:?}"
        );
        hold(json!({"$before": "+1d"}), json!(now.timestamp_millis()));
    }

    #[test]
    fn a_format_reads_the_value_and_fixed_operands() {
        hold(
            json!({"$date_format": "%d/%m/%Y %H:%M", "$after": "01/11/2026 00:00", "$before": "now"}),
            json!("30/11/2026 08:15"),
        );
        hold(
            json!({"$date_format": "%d.%m.%Y", "$before": "01.12.2026"}),
            json!("30.11.2026"),
        );
        fail(
            json!({"$date_format": "%d/%m/%Y", "$before": "now"}),
            json!("2026-11-30"),
            "`2026-11-30` is not a date written as `%d/%m/%Y`",
        );
    }

    #[test]
    fn what_is_not_a_date_fails_and_bad_operands_do_not_compile() {
        fail(
            json!({"$after": "-1d"}),
            json!("soon"),
            "`soon` is not a date (RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`; \
             $date_format reads others)",
        );
        fail(
            json!({"$after": "-1d"}),
            json!(true),
            "expected a date, got boolean true",
        );
        assert_eq!(
            errors(&json!({"$before": "yesterday"}), Mode::Strict),
            [
                "$before: `yesterday` is not a date (RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` or \
              `YYYY-MM-DD`; $date_format reads others)"
            ]
        );
        assert_eq!(
            errors(&json!({"$within": "soon"}), Mode::Strict).len(),
            1,
            "a bad span is refused"
        );
        assert_eq!(
            errors(&json!({"$date_format": "%Y"}), Mode::Strict),
            ["$date_format goes with $before, $after or $within"]
        );
        assert_eq!(
            errors(&json!({"$after": 1e300}), Mode::Strict),
            ["$after: 1e+300 is out of the range of dates"]
        );
        assert!(errors(&json!({"$after": "${start}"}), Mode::Lenient).is_empty());
    }
}
