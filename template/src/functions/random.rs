//! Random functions: `uuid()` is a version 4 UUID in lower-case hyphenated
//! form, `random_int(min, max)` a whole number with both ends included, and
//! `random_str(n)` `n` ASCII letters and digits.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;

use super::{Context, Function, int};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "uuid",
        signature: "uuid()",
        min_args: 0,
        max_args: Some(0),
        call: uuid,
    },
    Function {
        name: "random_int",
        signature: "random_int(min, max)",
        min_args: 2,
        max_args: Some(2),
        call: random_int,
    },
    Function {
        name: "random_str",
        signature: "random_str(length)",
        min_args: 1,
        max_args: Some(1),
        call: random_str,
    },
];

/// The longest `random_str` allowed, to keep a typo from eating memory.
const MAX_RANDOM_STR: i64 = 1_000_000;

fn uuid(_: &Context<'_>, _: &[Value]) -> Result<Value, String> {
    Ok(Value::String(uuid::Uuid::new_v4().to_string()))
}

fn random_int(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let min = int(args, 0, "min")?;
    let max = int(args, 1, "max")?;
    if min > max {
        return Err(format!("min {min} is greater than max {max}"));
    }
    Ok(rand::rng().random_range(min..=max).into())
}

fn random_str(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let n = int(args, 0, "length")?;
    if !(0..=MAX_RANDOM_STR).contains(&n) {
        return Err(format!(
            "length must be between 0 and {MAX_RANDOM_STR}, got {n}"
        ));
    }
    let len = usize::try_from(n).unwrap_or(0);
    let s: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    Ok(Value::String(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn call(f: super::super::Call, args: &[Value]) -> Result<Value, String> {
        f(
            &Context {
                base_dir: Path::new("."),
            },
            args,
        )
    }

    #[test]
    fn uuid_is_v4_and_fresh() {
        let a = call(uuid, &[]).unwrap();
        let b = call(uuid, &[]).unwrap();
        assert_ne!(a, b);
        let text = a.as_str().unwrap();
        let parsed = uuid::Uuid::parse_str(text).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.as_bytes()[14], b'4');
    }

    #[test]
    fn random_int_includes_both_ends() {
        let mut seen = BTreeSet::new();
        for _ in 0..1000 {
            let v = call(random_int, &[json!(1), json!(3)]).unwrap();
            seen.insert(v.as_i64().unwrap());
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(call(random_int, &[json!(5), json!(5)]).unwrap(), json!(5));
        assert_eq!(
            call(random_int, &[json!("-2"), json!(-2.0)]).unwrap(),
            json!(-2)
        );
        let full = call(random_int, &[json!(i64::MIN), json!(i64::MAX)]).unwrap();
        assert!(full.is_i64());
    }

    #[test]
    fn random_int_errors() {
        assert_eq!(
            call(random_int, &[json!(3), json!(1)]).unwrap_err(),
            "min 3 is greater than max 1"
        );
        assert_eq!(
            call(random_int, &[json!("a"), json!(1)]).unwrap_err(),
            "argument 1 (min) must be a whole number, got a string \"a\""
        );
        assert_eq!(
            call(random_int, &[json!(1), json!(2.5)]).unwrap_err(),
            "argument 2 (max) must be a whole number, got a number 2.5"
        );
    }

    #[test]
    fn random_str_is_letters_and_digits() {
        let v = call(random_str, &[json!(12)]).unwrap();
        let s = v.as_str().unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        let long = call(random_str, &[json!(2000)]).unwrap();
        let long = long.as_str().unwrap();
        assert!(long.chars().any(|c| c.is_ascii_digit()));
        assert!(long.chars().any(|c| c.is_ascii_uppercase()));
        assert!(long.chars().any(|c| c.is_ascii_lowercase()));
        assert_eq!(call(random_str, &[json!(0)]).unwrap(), json!(""));
        assert_ne!(
            call(random_str, &[json!(16)]).unwrap(),
            call(random_str, &[json!(16)]).unwrap()
        );
    }

    #[test]
    fn random_str_errors() {
        assert_eq!(
            call(random_str, &[json!(-1)]).unwrap_err(),
            "length must be between 0 and 1000000, got -1"
        );
        assert_eq!(
            call(random_str, &[json!(10_000_000)]).unwrap_err(),
            "length must be between 0 and 1000000, got 10000000"
        );
        assert_eq!(
            call(random_str, &[json!(null)]).unwrap_err(),
            "argument 1 (length) must be a whole number, got null"
        );
    }
}
