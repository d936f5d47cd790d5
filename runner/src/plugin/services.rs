//! The runner's services for plugins across the C ABI ([`HostV1`]): the
//! expectation check built-ins get through `Host::check`, and whether the
//! run is being interrupted.
//!
//! Both the runner (for plugins loaded into it) and the plugin-host process
//! (`atf __plugin-host`, the same binary) hand [`HOST_V1`] to each library
//! they load. Cancellation reaches plugins loaded into atf: each call is
//! numbered and its [`Host`] registered for the length of the call; in a
//! plugin-host process `cancelled` is always 0, since atf ends a host
//! process whose step is interrupted.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use atf_sdk::Host;
use atf_sdk::abi::HostV1;
use serde_json::{Value, json};

/// The services, as the plugin ABI lays them out.
pub(crate) static HOST_V1: HostV1 = HostV1 {
    size: std::mem::size_of::<HostV1>() as u32,
    check,
    cancelled,
    free,
};

/// Checks `actual` against `expect` (written as a step's `expect`): one
/// message per expectation that does not hold.
pub(crate) fn check_messages(actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
    let Value::Object(map) = expect else {
        return Err("expectations must be an object of JSONPath → expected value".into());
    };
    let failures = crate::expect::check(actual, map).map_err(|e| e.to_string())?;
    Ok(failures
        .into_iter()
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect())
}

/// `check` of [`HostV1`].
unsafe extern "C" fn check(actual: *const c_char, expect: *const c_char) -> *mut c_char {
    let answer = catch_unwind(AssertUnwindSafe(|| {
        if actual.is_null() || expect.is_null() {
            return json!({"error": "check got a null pointer"});
        }
        // SAFETY: non-null NUL-terminated strings valid for the call, per the ABI.
        let (actual, expect) = unsafe { (CStr::from_ptr(actual), CStr::from_ptr(expect)) };
        let parse = |text: &CStr, what: &str| {
            serde_json::from_slice::<Value>(text.to_bytes())
                .map_err(|e| format!("the {what} value is not JSON: {e}"))
        };
        match parse(actual, "actual")
            .and_then(|a| Ok((a, parse(expect, "expected")?)))
            .and_then(|(a, e)| check_messages(&a, &e))
        {
            Ok(messages) => json!({ "ok": messages }),
            Err(e) => json!({ "error": e }),
        }
    }))
    .unwrap_or_else(|_| json!({"error": "the check failed inside atf"}));
    CString::new(answer.to_string())
        .map(CString::into_raw)
        .unwrap_or(std::ptr::null_mut())
}

/// `free` of [`HostV1`].
unsafe extern "C" fn free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: it came from `CString::into_raw` in `check`, per the ABI.
        drop(unsafe { CString::from_raw(text) });
    }
}

/// The host of a call in flight, its lifetime erased: it is only used
/// under [`CALLS`]' lock, which [`Registered`] takes before the call's
/// host goes away.
struct HostRef(*const (dyn Host + 'static));

// SAFETY: `Host: Sync`, and the pointer is only dereferenced while the
// registration (and so the borrowed host) lives.
unsafe impl Send for HostRef {}

static CALLS: LazyLock<Mutex<HashMap<u64, HostRef>>> = LazyLock::new(Default::default);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// `cancelled` of [`HostV1`].
extern "C" fn cancelled(call: u64) -> i32 {
    let calls = CALLS.lock().unwrap_or_else(PoisonError::into_inner);
    match calls.get(&call) {
        // SAFETY: registered hosts outlive their entry (see `Registered`),
        // and the entry cannot go while this lock is held.
        Some(h) => i32::from(
            catch_unwind(AssertUnwindSafe(|| unsafe { (*h.0).cancelled() })).unwrap_or(false),
        ),
        None => 0,
    }
}

/// A call's registration: its number, and its host reachable through
/// `cancelled` until this is dropped.
pub(crate) struct Registered<'h> {
    number: u64,
    _host: std::marker::PhantomData<&'h dyn Host>,
}

impl<'h> Registered<'h> {
    /// Registers `host` for one call.
    pub(crate) fn new(host: &'h dyn Host) -> Registered<'h> {
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        // SAFETY: only the lifetime is erased; `Drop` removes the entry
        // (under the lock every use holds) before `'h` ends.
        let erased: *const (dyn Host + 'static) =
            unsafe { std::mem::transmute::<*const (dyn Host + 'h), _>(host as *const _) };
        CALLS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(number, HostRef(erased));
        Registered {
            number,
            _host: std::marker::PhantomData,
        }
    }

    /// The call's number, for the plugin's input.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        CALLS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_check(actual: &str, expect: &str) -> Value {
        let (a, e) = (CString::new(actual).unwrap(), CString::new(expect).unwrap());
        // SAFETY: two valid strings; the answer goes back to `free`.
        unsafe {
            let out = check(a.as_ptr(), e.as_ptr());
            let v = serde_json::from_slice(CStr::from_ptr(out).to_bytes()).unwrap();
            free(out);
            v
        }
    }

    #[test]
    fn check_answers_messages_or_an_error() {
        assert_eq!(
            call_check(r#"{"a": 1, "b": 2}"#, r#"{"a": 1, "$.b": {"$gt": 5}}"#),
            json!({"ok": ["$.b: expected > 5, got 2"]})
        );
        assert_eq!(call_check(r#"{"a": 1}"#, r#"{"a": 1}"#), json!({"ok": []}));
        let bad = call_check("{}", r#"{"a": {"$nope": 1}}"#);
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .contains("unknown matcher $nope"),
            "{bad}"
        );
        let bad = call_check("{", "{}");
        assert!(bad["error"].as_str().unwrap().contains("not JSON"), "{bad}");
    }

    struct Interrupted;
    impl Host for Interrupted {
        fn check(&self, _: &Value, _: &Value) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn cancelled(&self) -> bool {
            true
        }
    }

    #[test]
    fn cancelled_asks_the_host_of_a_call_in_flight_only() {
        let host = Interrupted;
        let number = {
            let r = Registered::new(&host);
            assert_eq!(cancelled(r.number()), 1);
            r.number()
        };
        assert_eq!(cancelled(number), 0, "the call is over");
        assert_eq!(cancelled(0), 0);
    }
}
