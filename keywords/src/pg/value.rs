//! PostgreSQL values, as the server sends them in its binary format, turned
//! into JSON.
//!
//! Booleans, integers and floats become JSON booleans and numbers (a float
//! that is not finite becomes the text `"NaN"`, `"Infinity"` or
//! `"-Infinity"`); `numeric` and `money` become exact text (`"12.50"`), as
//! MySQL's DECIMAL does; `json`/`jsonb` become the JSON value itself; dates
//! and times become text — `date` `"2024-01-02"`, `time` `"03:04:05.5"`,
//! `timestamp` `"2024-01-02T03:04:05.123"`, `timestamptz` in UTC as RFC 3339
//! `"2024-01-02T03:04:05.123Z"`, `interval` as ISO 8601 `"P1DT2H"`;
//! `uuid`, `inet`/`cidr`, `macaddr`, `bit` and enums become their text;
//! `bytea` becomes Base64; arrays become (nested) lists, composite types
//! objects keyed by field, ranges `{lower, upper, lower_inc, upper_inc}`,
//! and domains whatever their base type becomes. Any other type comes back
//! as the Base64 of its binary form (cast it to text in the SQL to read it).

use std::error::Error;

use atf_sdk::{Value, json};
use base64::Engine as _;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use fallible_iterator::FallibleIterator;
use postgres_protocol::types as wire;
use serde_json::Map;
use tokio_postgres::types::{FromSql, Kind, Type};

/// Errors of decoding, as postgres-types spells them.
pub(crate) type BoxError = Box<dyn Error + Sync + Send>;

/// One column value of a row, already converted to JSON.
pub(crate) struct PgValue(pub(crate) Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(PgValue)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

// Type OIDs of the built-in types decoded here (pg_type.dat).
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const REGPROC: u32 = 24;
const TEXT: u32 = 25;
const OID: u32 = 26;
const XID: u32 = 28;
const CID: u32 = 29;
const JSON: u32 = 114;
const XML: u32 = 142;
const CIDR: u32 = 650;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const MACADDR8: u32 = 774;
const MONEY: u32 = 790;
const MACADDR: u32 = 829;
const INET: u32 = 869;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const BIT: u32 = 1560;
const VARBIT: u32 = 1562;
const NUMERIC: u32 = 1700;
const REGPROCEDURE: u32 = 2202;
const REGOPER: u32 = 2203;
const REGOPERATOR: u32 = 2204;
const REGCLASS: u32 = 2205;
const REGTYPE: u32 = 2206;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;
const REGCONFIG: u32 = 3734;
const REGDICTIONARY: u32 = 3769;
const REGNAMESPACE: u32 = 4089;
const REGROLE: u32 = 4096;
const JSONPATH: u32 = 4072;
const RECORD: u32 = 2249;

/// Converts one non-null value of type `ty` from its binary form.
pub(crate) fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    match ty.kind() {
        Kind::Array(member) => return array(member, raw),
        Kind::Domain(base) => return decode(base, raw),
        Kind::Enum(_) => return Ok(Value::String(wire::text_from_sql(raw)?.to_string())),
        Kind::Composite(fields) => return composite(fields, raw),
        Kind::Range(sub) => return range(sub, raw),
        _ => {}
    }
    Ok(match ty.oid() {
        BOOL => Value::Bool(wire::bool_from_sql(raw)?),
        INT2 => json!(wire::int2_from_sql(raw)?),
        INT4 => json!(wire::int4_from_sql(raw)?),
        INT8 => json!(wire::int8_from_sql(raw)?),
        OID | XID | CID | REGPROC | REGPROCEDURE | REGOPER | REGOPERATOR | REGCLASS | REGTYPE
        | REGCONFIG | REGDICTIONARY | REGNAMESPACE | REGROLE => {
            json!(wire::oid_from_sql(raw)?)
        }
        FLOAT4 => {
            let f = wire::float4_from_sql(raw)?;
            // Through its shortest text, so that 1.1 stays 1.1 and not 1.100000023841858.
            float(f.to_string().parse().unwrap_or(f64::from(f)))
        }
        FLOAT8 => float(wire::float8_from_sql(raw)?),
        NUMERIC => Value::String(numeric(raw)?),
        MONEY => Value::String(money(wire::int8_from_sql(raw)?)),
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML => {
            Value::String(wire::text_from_sql(raw)?.to_string())
        }
        CHAR => Value::String(char::from(wire::char_from_sql(raw)? as u8).to_string()),
        JSON => serde_json::from_slice(raw)?,
        JSONB => match raw.split_first() {
            Some((1, rest)) => serde_json::from_slice(rest)?,
            _ => return Err("unsupported jsonb version".into()),
        },
        JSONPATH => match raw.split_first() {
            Some((1, rest)) => Value::String(std::str::from_utf8(rest)?.to_string()),
            _ => return Err("unsupported jsonpath version".into()),
        },
        UUID => Value::String(
            uuid::Uuid::from_bytes(wire::uuid_from_sql(raw)?)
                .hyphenated()
                .to_string(),
        ),
        BYTEA => Value::String(base64_of(wire::bytea_from_sql(raw))),
        DATE => Value::String(date(wire::date_from_sql(raw)?)?),
        TIME => Value::String(time_of_day(wire::time_from_sql(raw)?)?),
        TIMETZ => Value::String(timetz(raw)?),
        TIMESTAMP => Value::String(timestamp(wire::timestamp_from_sql(raw)?, false)?),
        TIMESTAMPTZ => Value::String(timestamp(wire::timestamp_from_sql(raw)?, true)?),
        INTERVAL => Value::String(interval(raw)?),
        INET | CIDR => {
            let inet = wire::inet_from_sql(raw)?;
            let full = if inet.addr().is_ipv4() { 32 } else { 128 };
            if ty.oid() == INET && inet.netmask() == full {
                Value::String(inet.addr().to_string())
            } else {
                Value::String(format!("{}/{}", inet.addr(), inet.netmask()))
            }
        }
        MACADDR => Value::String(hex_pairs(&wire::macaddr_from_sql(raw)?)),
        MACADDR8 if raw.len() == 8 => Value::String(hex_pairs(raw)),
        BIT | VARBIT => {
            let bits = wire::varbit_from_sql(raw)?;
            let mut text = String::with_capacity(bits.len());
            for i in 0..bits.len() {
                let on = bits.bytes()[i / 8] & (0x80 >> (i % 8)) != 0;
                text.push(if on { '1' } else { '0' });
            }
            Value::String(text)
        }
        // An anonymous row, `ROW(1, 'x')`: its fields say their own types.
        RECORD => composite(&[], raw)?,
        // An extension type whose binary form is its text.
        _ if ty.name() == "citext" => Value::String(wire::text_from_sql(raw)?.to_string()),
        _ => Value::String(base64_of(raw)),
    })
}

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A float as a JSON number; not-a-number and infinities as PostgreSQL spells them.
fn float(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn hex_pairs(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads a big-endian number of `N` bytes at `*at`, moving `*at` past it.
fn take<const N: usize>(raw: &[u8], at: &mut usize) -> Result<[u8; N], BoxError> {
    let bytes = raw
        .get(*at..*at + N)
        .ok_or("value shorter than its type says")?;
    *at += N;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

/// `numeric` in its exact decimal text, with as many fraction digits as its scale.
pub(crate) fn numeric(raw: &[u8]) -> Result<String, BoxError> {
    let mut at = 0;
    let ndigits = i16::from_be_bytes(take(raw, &mut at)?);
    let weight = i16::from_be_bytes(take(raw, &mut at)?);
    let sign = u16::from_be_bytes(take(raw, &mut at)?);
    let dscale = u16::from_be_bytes(take(raw, &mut at)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("invalid numeric sign {other:#x}").into()),
    }
    let ndigits = usize::try_from(ndigits).map_err(|_| "negative numeric digit count")?;
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = i16::from_be_bytes(take(raw, &mut at)?);
        if !(0..10000).contains(&d) {
            return Err(format!("invalid numeric digit {d}").into());
        }
        digits.push(d);
    }
    // digits[i] is worth 10000^(weight - i).
    let group = |i: i32| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let weight = i32::from(weight);
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&group(0).to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", group(i)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < usize::from(dscale) {
            frac.push_str(&format!("{:04}", group(i)));
            i += 1;
        }
        frac.truncate(usize::from(dscale));
        text.push('.');
        text.push_str(&frac);
    }
    Ok(text)
}

/// `money`: cents as exact text with two fraction digits.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `.5`, `.123456`: a fraction of a second in microseconds, without trailing
/// zeros, as PostgreSQL writes it; nothing for a whole second.
fn fraction(micros: u64) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// `date`: days since 2000-01-01.
pub(crate) fn date(days: i32) -> Result<String, BoxError> {
    match days {
        i32::MAX => return Ok("infinity".into()),
        i32::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let d = epoch()
        .date()
        .checked_add_signed(TimeDelta::days(i64::from(days)))
        .ok_or("date out of range")?;
    Ok(d.format("%Y-%m-%d").to_string())
}

/// `time`: microseconds since midnight (24:00:00 included).
pub(crate) fn time_of_day(micros: i64) -> Result<String, BoxError> {
    if !(0..=86_400_000_000).contains(&micros) {
        return Err("time out of range".into());
    }
    let secs = micros / 1_000_000;
    Ok(format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        fraction((micros % 1_000_000) as u64)
    ))
}

/// `timetz`: the time of day, then the zone as `+HH:MM` (`:SS` when it has seconds).
fn timetz(raw: &[u8]) -> Result<String, BoxError> {
    let mut at = 0;
    let micros = i64::from_be_bytes(take(raw, &mut at)?);
    // The zone is stored as seconds *west* of UTC.
    let east = -i64::from(i32::from_be_bytes(take(raw, &mut at)?));
    let sign = if east < 0 { '-' } else { '+' };
    let abs = east.unsigned_abs();
    let mut zone = format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
    if abs % 60 != 0 {
        zone.push_str(&format!(":{:02}", abs % 60));
    }
    Ok(format!("{}{zone}", time_of_day(micros)?))
}

/// `timestamp` / `timestamptz`: microseconds since 2000-01-01 00:00:00 (UTC
/// for `timestamptz`), as RFC 3339 text — with `Z` when `utc`.
pub(crate) fn timestamp(micros: i64, utc: bool) -> Result<String, BoxError> {
    match micros {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let t = epoch()
        .checked_add_signed(TimeDelta::microseconds(micros))
        .ok_or("timestamp out of range")?;
    let sub_micros = u64::from(t.and_utc().timestamp_subsec_micros());
    Ok(format!(
        "{}{}{}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        fraction(sub_micros),
        if utc { "Z" } else { "" }
    ))
}

/// `interval` (microseconds, days, months) as ISO 8601: `P1Y2M3DT4H5M6.5S`,
/// `PT0S` for zero; each part keeps its own sign, as PostgreSQL's
/// `iso_8601` style writes them.
pub(crate) fn interval(raw: &[u8]) -> Result<String, BoxError> {
    let mut at = 0;
    let micros = i64::from_be_bytes(take(raw, &mut at)?);
    let days = i32::from_be_bytes(take(raw, &mut at)?);
    let months = i32::from_be_bytes(take(raw, &mut at)?);
    if micros == 0 && days == 0 && months == 0 {
        return Ok("PT0S".into());
    }
    let mut text = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [
        (i64::from(years), 'Y'),
        (i64::from(months), 'M'),
        (i64::from(days), 'D'),
    ] {
        if n != 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    if micros != 0 {
        text.push('T');
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let (hours, minutes) = (abs / 3_600_000_000, abs / 60_000_000 % 60);
        let (secs, sub) = (abs / 1_000_000 % 60, abs % 1_000_000);
        if hours != 0 {
            text.push_str(&format!("{sign}{hours}H"));
        }
        if minutes != 0 {
            text.push_str(&format!("{sign}{minutes}M"));
        }
        if secs != 0 || sub != 0 {
            text.push_str(&format!("{sign}{secs}{}S", fraction(sub)));
        }
    }
    Ok(text)
}

/// An array, any number of dimensions, as nested lists.
fn array(member: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let arr = wire::array_from_sql(raw)?;
    let dims: Vec<usize> = arr
        .dimensions()
        .map(|d| Ok(usize::try_from(d.len).unwrap_or(0)))
        .collect()?;
    let values: Vec<Value> = arr
        .values()
        .map(|v| match v {
            None => Ok(Value::Null),
            Some(bytes) => decode(member, bytes),
        })
        .collect()?;
    if dims.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let mut items = values.into_iter();
    Ok(nest(&dims, &mut items))
}

/// Builds the nested lists of dimensions `dims` from the values in order.
fn nest(dims: &[usize], items: &mut impl Iterator<Item = Value>) -> Value {
    match dims.split_first() {
        None => items.next().unwrap_or(Value::Null),
        Some((n, rest)) => Value::Array((0..*n).map(|_| nest(rest, items)).collect()),
    }
}

/// A composite (row) value as an object keyed by field name (`f1`, `f2`, …
/// for an anonymous record, whose field types must then be built-in ones).
fn composite(fields: &[tokio_postgres::types::Field], raw: &[u8]) -> Result<Value, BoxError> {
    let mut at = 0;
    let count = i32::from_be_bytes(take(raw, &mut at)?);
    let mut obj = Map::new();
    for i in 0..usize::try_from(count).unwrap_or(0) {
        let oid = u32::from_be_bytes(take(raw, &mut at)?);
        let len = i32::from_be_bytes(take(raw, &mut at)?);
        let value = if len < 0 {
            Value::Null
        } else {
            let len = len as usize;
            let bytes = raw
                .get(at..at + len)
                .ok_or("composite value shorter than its fields")?;
            at += len;
            match fields
                .get(i)
                .map(|f| f.type_().clone())
                .or_else(|| Type::from_oid(oid))
            {
                Some(ty) => decode(&ty, bytes)?,
                None => Value::String(base64_of(bytes)),
            }
        };
        let name = fields
            .get(i)
            .map_or_else(|| format!("f{}", i + 1), |f| f.name().to_string());
        obj.insert(name, value);
    }
    Ok(Value::Object(obj))
}

/// A range as `{lower, upper, lower_inc, upper_inc}` (null for an unbounded
/// end), or `{"empty": true}`.
fn range(sub: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    use wire::{Range, RangeBound};
    let bound = |b: RangeBound<Option<&[u8]>>| -> Result<(Value, bool), BoxError> {
        Ok(match b {
            RangeBound::Inclusive(v) => (v.map_or(Ok(Value::Null), |v| decode(sub, v))?, true),
            RangeBound::Exclusive(v) => (v.map_or(Ok(Value::Null), |v| decode(sub, v))?, false),
            RangeBound::Unbounded => (Value::Null, false),
        })
    };
    match wire::range_from_sql(raw)? {
        Range::Empty => Ok(json!({ "empty": true })),
        Range::Nonempty(lower, upper) => {
            let (lower, lower_inc) = bound(lower)?;
            let (upper, upper_inc) = bound(upper)?;
            Ok(json!({
                "lower": lower, "upper": upper,
                "lower_inc": lower_inc, "upper_inc": upper_inc,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    /// The binary form of a numeric from its parts.
    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((digits.len() as i16).to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numeric_is_exact_text_with_its_scale() {
        let n = |w, s, sc, d: &[i16]| numeric(&numeric_bytes(w, s, sc, d)).unwrap();
        assert_eq!(n(0, 0, 2, &[12, 5000]), "12.50");
        assert_eq!(n(-1, 0, 3, &[10]), "0.001");
        assert_eq!(n(0, 0, 2, &[]), "0.00");
        assert_eq!(n(0, 0, 0, &[]), "0");
        assert_eq!(n(1, 0x4000, 0, &[1, 0]), "-10000");
        assert_eq!(n(2, 0, 4, &[1, 2, 3, 4567]), "100020003.4567");
        assert_eq!(
            n(4, 0, 0, &[1234, 5678, 9012, 3456, 7890]),
            "12345678901234567890"
        );
        assert_eq!(n(-2, 0, 10, &[12]), "0.0000001200");
        assert_eq!(n(0, 0xC000, 0, &[]), "NaN");
        assert_eq!(n(0, 0xD000, 0, &[]), "Infinity");
        assert_eq!(n(0, 0xF000, 0, &[]), "-Infinity");
        assert!(
            numeric(&[0, 1]).is_err(),
            "short input is an error, not a panic"
        );
        assert!(numeric(&numeric_bytes(0, 0, 0, &[10000])).is_err());
    }

    #[test]
    fn dates_and_times_are_rfc3339_text() {
        assert_eq!(date(0).unwrap(), "2000-01-01");
        assert_eq!(date(-1).unwrap(), "1999-12-31");
        assert_eq!(date(i32::MAX).unwrap(), "infinity");
        assert_eq!(time_of_day(0).unwrap(), "00:00:00");
        assert_eq!(time_of_day(3_723_500_000).unwrap(), "01:02:03.5");
        assert_eq!(time_of_day(86_400_000_000).unwrap(), "24:00:00");
        assert!(time_of_day(-1).is_err());
        let t = 24 * 3600 * 1_000_000 + 3_723_000_123;
        assert_eq!(timestamp(t, false).unwrap(), "2000-01-02T01:02:03.000123");
        assert_eq!(timestamp(t, true).unwrap(), "2000-01-02T01:02:03.000123Z");
        assert_eq!(timestamp(-1_000_000, true).unwrap(), "1999-12-31T23:59:59Z");
        assert_eq!(timestamp(i64::MIN, true).unwrap(), "-infinity");
        let mut b = Vec::new();
        b.extend(3_723_000_000i64.to_be_bytes());
        b.extend((-7200i32).to_be_bytes());
        assert_eq!(timetz(&b).unwrap(), "01:02:03+02:00");
    }

    #[test]
    fn intervals_are_iso_8601() {
        let iv = |micros: i64, days: i32, months: i32| {
            let mut b = Vec::new();
            b.extend(micros.to_be_bytes());
            b.extend(days.to_be_bytes());
            b.extend(months.to_be_bytes());
            interval(&b).unwrap()
        };
        assert_eq!(iv(0, 0, 0), "PT0S");
        assert_eq!(iv(7_200_000_000, 1, 0), "P1DT2H");
        assert_eq!(iv(6_500_000, 0, 14), "P1Y2MT6.5S");
        assert_eq!(iv(-90_000_000, -3, 0), "P-3DT-1M-30S");
    }

    #[test]
    fn simple_types_become_json() {
        let mut buf = BytesMut::new();
        wire::int8_to_sql(-5, &mut buf);
        assert_eq!(decode(&Type::INT8, &buf).unwrap(), json!(-5));
        buf.clear();
        wire::float4_to_sql(1.1, &mut buf);
        assert_eq!(decode(&Type::FLOAT4, &buf).unwrap(), json!(1.1));
        buf.clear();
        wire::float8_to_sql(f64::NAN, &mut buf);
        assert_eq!(decode(&Type::FLOAT8, &buf).unwrap(), json!("NaN"));
        assert_eq!(decode(&Type::BOOL, &[1]).unwrap(), json!(true));
        assert_eq!(decode(&Type::TEXT, b"caf\xc3\xa9").unwrap(), json!("café"));
        assert!(decode(&Type::TEXT, b"\xff").is_err());
        assert_eq!(
            decode(&Type::JSONB, b"\x01{\"a\": [1, null]}").unwrap(),
            json!({"a": [1, null]})
        );
        assert_eq!(decode(&Type::JSON, b"\"x\"").unwrap(), json!("x"));
        assert_eq!(decode(&Type::BYTEA, &[0, 1, 255]).unwrap(), json!("AAH/"));
        let id = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
            0xde, 0xf0,
        ];
        assert_eq!(
            decode(&Type::UUID, &id).unwrap(),
            json!("12345678-9abc-def0-1234-56789abcdef0")
        );
        buf.clear();
        wire::int8_to_sql(-1234, &mut buf);
        assert_eq!(decode(&Type::MONEY, &buf).unwrap(), json!("-12.34"));
        buf.clear();
        wire::inet_to_sql("10.0.0.1".parse().unwrap(), 32, &mut buf);
        assert_eq!(decode(&Type::INET, &buf).unwrap(), json!("10.0.0.1"));
        buf.clear();
        wire::inet_to_sql("10.0.0.0".parse().unwrap(), 8, &mut buf);
        assert_eq!(decode(&Type::CIDR, &buf).unwrap(), json!("10.0.0.0/8"));
        buf.clear();
        wire::varbit_to_sql(5, [0b1010_1000u8].into_iter(), &mut buf).unwrap();
        assert_eq!(decode(&Type::VARBIT, &buf).unwrap(), json!("10101"));
        // A type this module does not know: the Base64 of its binary form.
        assert_eq!(decode(&Type::POINT, &[0, 1]).unwrap(), json!("AAE="));
    }

    #[test]
    fn arrays_nest_by_dimension_and_keep_nulls() {
        let mut buf = BytesMut::new();
        let items: Vec<Option<i32>> = vec![Some(1), None, Some(3), Some(4)];
        wire::array_to_sql(
            [
                wire::ArrayDimension {
                    len: 2,
                    lower_bound: 1,
                },
                wire::ArrayDimension {
                    len: 2,
                    lower_bound: 1,
                },
            ],
            Type::INT4.oid(),
            items,
            |v, buf| match v {
                Some(n) => {
                    wire::int4_to_sql(n, buf);
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            decode(&Type::INT4_ARRAY, &buf).unwrap(),
            json!([[1, null], [3, 4]])
        );
        buf.clear();
        wire::array_to_sql(
            [],
            Type::TEXT.oid(),
            Vec::<&str>::new(),
            |v, buf| {
                wire::text_to_sql(v, buf);
                Ok(postgres_protocol::IsNull::No)
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(decode(&Type::TEXT_ARRAY, &buf).unwrap(), json!([]));
    }
}
