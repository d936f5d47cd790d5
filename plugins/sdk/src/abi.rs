//! The C ABI between the runner and a plugin library.
//!
//! A plugin is a shared library exporting four C symbols, and only C types
//! and NUL-terminated UTF-8 JSON text cross between it and the runner, so
//! a plugin built by another compiler (or in another language) loads into
//! any atf that speaks the same [`ABI_VERSION`]:
//!
//! | symbol | C signature | what it does |
//! |---|---|---|
//! | `atf_plugin_abi_version` | `uint32_t (void)` | the ABI version the plugin speaks; the runner calls it first and touches nothing else when it differs |
//! | `atf_plugin_manifest` | `char *(void)` | a [`Manifest`] as JSON, or `{"error": "..."}` when the plugin cannot start |
//! | `atf_plugin_call` | `char *(const char *keyword, const char *input)` | runs one keyword: `input` is a [`CallInput`], the answer a [`CallOutput`]: `{"ok": result}` or `{"error": "message"}` |
//! | `atf_plugin_free` | `void (char *)` | frees a string the two functions above returned |
//! | `atf_plugin_set_host` (optional) | `void (const AtfHostV1 *)` | the runner's services, handed over once after loading: see [`HostV1`] |
//!
//! Whoever allocates frees: the strings the runner passes in stay the
//! runner's and are only read during the call; the strings the plugin
//! returns are the plugin's, and the runner hands them back to
//! `atf_plugin_free` once it has read them. A panic never crosses the
//! boundary: it becomes `{"error": "plugin panicked: <message>"}`.
//!
//! Rust plugins do not write these symbols by hand: [`crate::export_plugin!`]
//! generates them from a list of [`Keyword`]s, through the helpers here
//! ([`Plugin`], [`export_manifest`], [`export_call`], [`export_free`]). The
//! runner uses the other half ([`encode_input`], [`decode_output`],
//! [`parse_manifest`]).

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, NoHost};

/// The version of the plugin ABI this SDK speaks. It changes only when the
/// symbols or the JSON shapes change in a way an older runner or plugin
/// would misread; adding optional JSON fields does not change it.
pub const ABI_VERSION: u32 = 1;

/// The symbol giving the plugin's ABI version: [`AbiVersionFn`].
pub const SYM_ABI_VERSION: &CStr = c"atf_plugin_abi_version";
/// The symbol giving the plugin's manifest: [`ManifestFn`].
pub const SYM_MANIFEST: &CStr = c"atf_plugin_manifest";
/// The symbol running one keyword: [`CallFn`].
pub const SYM_CALL: &CStr = c"atf_plugin_call";
/// The symbol freeing what the plugin returned: [`FreeFn`].
pub const SYM_FREE: &CStr = c"atf_plugin_free";

/// `uint32_t atf_plugin_abi_version(void)`
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `char *atf_plugin_manifest(void)`
pub type ManifestFn = unsafe extern "C" fn() -> *mut c_char;
/// `char *atf_plugin_call(const char *keyword, const char *input)`
pub type CallFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut c_char;
/// `void atf_plugin_free(char *)`
pub type FreeFn = unsafe extern "C" fn(*mut c_char);
/// The optional symbol taking the runner's services: [`SetHostFn`].
pub const SYM_SET_HOST: &CStr = c"atf_plugin_set_host";
/// `void atf_plugin_set_host(const AtfHostV1 *host)`
pub type SetHostFn = unsafe extern "C" fn(*const HostV1);

/// The runner's services as C functions (`struct AtfHostV1`), handed to
/// `atf_plugin_set_host` once after the library is loaded; the struct and
/// its functions stay valid as long as the library is loaded. A plugin
/// without the symbol runs as before, with no services.
///
/// - `check(actual, expect)`: both JSON texts, `expect` written as a step's
///   `expect`; the answer is `{"ok": ["message", ...]}` (one message per
///   expectation that does not hold) or `{"error": "..."}` (malformed
///   expectations), to be freed with `free`.
/// - `cancelled(call)`: non-zero once the run is being interrupted; `call`
///   is the `call` number of the [`CallInput`] (0 when unknown).
/// - `free(text)`: frees what `check` returned.
///
/// `size` is `sizeof(AtfHostV1)` as the runner knows it: later versions
/// only append fields, so a plugin reads the ones that fit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HostV1 {
    /// The size of this struct on the runner's side, in bytes.
    pub size: u32,
    /// Checks expectations.
    pub check: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut c_char,
    /// Whether the run is being interrupted.
    pub cancelled: extern "C" fn(u64) -> i32,
    /// Frees what `check` returned.
    pub free: unsafe extern "C" fn(*mut c_char),
}

/// What `atf_plugin_manifest` returns: who the plugin is and its keywords.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The ABI version, again (the runner has already checked it).
    pub abi_version: u32,
    /// The namespace: every keyword is named `namespace.name`.
    pub namespace: String,
    /// The plugin crate's name and version.
    pub plugin: PluginMeta,
    /// The version of the SDK the plugin was built with (informative).
    #[serde(default)]
    pub sdk_version: String,
    /// Its keywords, with their full `namespace.name` names.
    pub keywords: Vec<KeywordSpec>,
}

/// A plugin's own name and version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginMeta {
    /// The plugin's name (its crate name for Rust plugins).
    pub name: String,
    /// The plugin's version.
    #[serde(default)]
    pub version: String,
}

/// What the runner passes to `atf_plugin_call` as `input`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallInput<'a> {
    /// The step's `args`, placeholders resolved.
    #[serde(default)]
    pub args: Cow<'a, Value>,
    /// Milliseconds left before the step times out.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// When the case began, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub case_start_ms: i64,
    /// The folder of the case file, for relative file arguments.
    #[serde(default)]
    pub base_dir: Cow<'a, str>,
    /// The call's number, for [`HostV1::cancelled`] (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub call: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// What `atf_plugin_call` returns: `{"ok": result}` or `{"error": message}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum CallOutput {
    /// The keyword's result.
    #[serde(rename = "ok")]
    Ok(Value),
    /// The keyword's error message.
    #[serde(rename = "error")]
    Error(String),
}

impl From<KeywordResult> for CallOutput {
    fn from(result: KeywordResult) -> Self {
        match result {
            Ok(value) => CallOutput::Ok(value),
            Err(e) => CallOutput::Error(e.message),
        }
    }
}

// ----- runner side -----

/// Encodes one call as the `input` JSON of `atf_plugin_call`.
pub fn encode_input(call: &Call<'_>) -> String {
    encode_input_numbered(call, 0)
}

/// [`encode_input`] with the call's number for [`HostV1::cancelled`].
pub fn encode_input_numbered(call: &Call<'_>, number: u64) -> String {
    let input = CallInput {
        args: Cow::Borrowed(call.args),
        timeout_ms: u64::try_from(call.remaining().as_millis()).unwrap_or(u64::MAX),
        case_start_ms: call.case_start_ms,
        base_dir: call.base_dir.to_string_lossy(),
        call: number,
    };
    // A `Value` and plain fields always serialize.
    serde_json::to_string(&input).unwrap_or_else(|_| "{}".into())
}

/// Decodes what `atf_plugin_call` returned. Anything but `{"ok": ...}` or
/// `{"error": "..."}` is an error that says what the plugin sent.
pub fn decode_output(bytes: &[u8]) -> KeywordResult {
    decode_answer(bytes, &NoHost)
}

/// [`decode_output`], declaring to `host` the secrets the answer lists
/// (`"secrets": [...]` beside `ok` or `error`: what the keyword passed to
/// [`crate::Host::secret`]).
pub fn decode_answer(bytes: &[u8], host: &dyn crate::Host) -> KeywordResult {
    let mut value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Err(KeywordError::new(format!(
                "the plugin returned an invalid answer ({e}): {}",
                preview(bytes)
            )));
        }
    };
    if let Some(Value::Array(secrets)) = value.as_object_mut().and_then(|m| m.remove("secrets")) {
        for s in secrets.iter().filter_map(Value::as_str) {
            host.secret(s);
        }
    }
    match serde_json::from_value::<CallOutput>(value) {
        Ok(CallOutput::Ok(value)) => Ok(value),
        Ok(CallOutput::Error(message)) => Err(KeywordError::new(message)),
        Err(e) => Err(KeywordError::new(format!(
            "the plugin returned an invalid answer ({e}): {}",
            preview(bytes)
        ))),
    }
}

/// Decodes what `atf_plugin_manifest` returned.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("its manifest is not JSON ({e}): {}", preview(bytes)))?;
    if let Some(error) = value.get("error") {
        let message = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("it failed to start: {message}"));
    }
    serde_json::from_value(value).map_err(|e| format!("its manifest is malformed: {e}"))
}

/// The start of a plugin's answer, for error messages.
fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

// ----- plugin side -----

/// A plugin's keywords, indexed by their full names: what
/// [`crate::export_plugin!`] builds once and serves calls from.
pub struct Plugin {
    keywords: Vec<Box<dyn Keyword>>,
    index: HashMap<String, usize>,
    manifest: String,
    namespace: String,
}

impl Plugin {
    /// Gathers `keywords` under `namespace`. A keyword whose spec name lacks
    /// the `namespace.` prefix gets it. Two keywords of the same name, or an
    /// empty namespace, are errors.
    pub fn new(
        namespace: &str,
        name: &str,
        version: &str,
        keywords: Vec<Box<dyn Keyword>>,
    ) -> Result<Plugin, String> {
        if namespace.is_empty() || namespace.contains('.') {
            return Err(format!(
                "the namespace `{namespace}` must be a non-empty name without dots"
            ));
        }
        let prefix = format!("{namespace}.");
        let mut specs = Vec::with_capacity(keywords.len());
        let mut index = HashMap::with_capacity(keywords.len());
        for (i, keyword) in keywords.iter().enumerate() {
            let mut spec = keyword.spec();
            if !spec.name.starts_with(&prefix) {
                spec.name = format!("{prefix}{}", spec.name);
            }
            if index.insert(spec.name.clone(), i).is_some() {
                return Err(format!("the keyword `{}` is defined twice", spec.name));
            }
            specs.push(spec);
        }
        let manifest = Manifest {
            abi_version: ABI_VERSION,
            namespace: namespace.to_owned(),
            plugin: PluginMeta {
                name: name.to_owned(),
                version: version.to_owned(),
            },
            sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
            keywords: specs,
        };
        let manifest = serde_json::to_string(&manifest).map_err(|e| e.to_string())?;
        Ok(Plugin {
            keywords,
            index,
            manifest,
            namespace: namespace.to_owned(),
        })
    }

    /// The manifest, as JSON.
    pub fn manifest_json(&self) -> &str {
        &self.manifest
    }

    /// Runs the keyword `name` with the `input` JSON of `atf_plugin_call`;
    /// returns the answer JSON. Panics are the caller's to catch.
    pub fn call_json(&self, name: &str, input: &[u8]) -> String {
        let mut secrets = Secrets {
            declared: std::sync::Mutex::new(Vec::new()),
            call: 0,
        };
        let output = match serde_json::from_slice::<CallInput<'_>>(input) {
            Err(e) => CallOutput::Error(format!("the plugin got invalid input: {e}")),
            Ok(input) => match self.index.get(name) {
                None => CallOutput::Error(format!(
                    "the plugin `{}` has no keyword `{name}`",
                    self.namespace
                )),
                Some(&i) => {
                    let now = Instant::now();
                    let deadline = now
                        .checked_add(Duration::from_millis(input.timeout_ms))
                        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
                        .unwrap_or(now);
                    secrets.call = input.call;
                    let call = Call {
                        args: &input.args,
                        deadline,
                        case_start_ms: input.case_start_ms,
                        base_dir: Path::new(&*input.base_dir),
                        host: &secrets,
                    };
                    self.keywords[i].call(&call).into()
                }
            },
        };
        let secrets = secrets
            .declared
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if secrets.is_empty() {
            return encode_output(&output);
        }
        #[derive(Serialize)]
        struct Answer<'a> {
            #[serde(flatten)]
            output: &'a CallOutput,
            secrets: Vec<String>,
        }
        serde_json::to_string(&Answer {
            output: &output,
            secrets,
        })
        .unwrap_or_else(|_| encode_output(&output))
    }
}

/// The host a plugin's keywords see across the ABI: it keeps the secrets a
/// keyword declares, for the answer, and asks the runner's [`HostV1`] (when
/// it handed one over) to check expectations and whether the run is being
/// interrupted.
struct Secrets {
    declared: std::sync::Mutex<Vec<String>>,
    call: u64,
}

/// The runner's services, once `atf_plugin_set_host` gave them.
static HOST: std::sync::OnceLock<HostV1> = std::sync::OnceLock::new();

impl crate::Host for Secrets {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        let Some(host) = HOST.get() else {
            return NoHost.check(actual, expect);
        };
        let encode = |v: &Value| {
            CString::new(serde_json::to_string(v).unwrap_or_default())
                .map_err(|_| "a value holds a NUL character".to_string())
        };
        let (actual, expect) = (encode(actual)?, encode(expect)?);
        // SAFETY: the runner's `check` reads two NUL-terminated strings for
        // the call and returns a string of its own, which goes back to its
        // `free` once read.
        let answer = unsafe {
            let out = (host.check)(actual.as_ptr(), expect.as_ptr());
            if out.is_null() {
                return Err("the runner did not answer the check".into());
            }
            let answer = CStr::from_ptr(out).to_bytes().to_vec();
            (host.free)(out);
            answer
        };
        match serde_json::from_slice::<Value>(&answer) {
            Ok(Value::Object(mut m)) => match (m.remove("ok"), m.remove("error")) {
                (Some(Value::Array(messages)), _) => Ok(messages
                    .into_iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                    .collect()),
                (_, Some(Value::String(e))) => Err(e),
                _ => Err("the runner's check answer is malformed".into()),
            },
            _ => Err("the runner's check answer is malformed".into()),
        }
    }
    fn cancelled(&self) -> bool {
        HOST.get().is_some_and(|h| (h.cancelled)(self.call) != 0)
    }
    fn secret(&self, value: &str) {
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(value.to_string());
    }
}

/// The body of `atf_plugin_set_host`: keeps the runner's services (the
/// first ones given; a null or too small struct is ignored).
///
/// # Safety
///
/// `host` must be null or point to a [`HostV1`] whose `size` is right and
/// whose functions stay valid while the library is loaded.
pub unsafe fn export_set_host(host: *const HostV1) {
    if host.is_null() {
        return;
    }
    // SAFETY: non-null and valid, per this function's contract; the size is
    // read first so that a shorter struct is never read past its end.
    unsafe {
        let size = std::ptr::addr_of!((*host).size).read();
        if (size as usize) < std::mem::size_of::<HostV1>() {
            return;
        }
        let _ = HOST.set(*host);
    }
}

fn encode_output(output: &CallOutput) -> String {
    serde_json::to_string(output).unwrap_or_else(|e| {
        format!(
            r#"{{"error":{}}}"#,
            Value::String(format!("the result cannot be encoded: {e}"))
        )
    })
}

/// `{"error": message}` as JSON.
fn error_json(message: String) -> String {
    encode_output(&CallOutput::Error(message))
}

/// Hands a string to C. JSON text from serde has no NUL bytes; should one
/// appear anyway, the answer becomes an error rather than a cut string.
fn into_c(text: String) -> *mut c_char {
    let c = CString::new(text)
        .unwrap_or_else(|_| c"{\"error\":\"the plugin's answer contains a NUL byte\"}".to_owned());
    c.into_raw()
}

/// The body of `atf_plugin_manifest`: the manifest JSON of the plugin
/// `plugin` returns, or `{"error": ...}` when building it failed or panicked.
pub fn export_manifest(plugin: fn() -> &'static Result<Plugin, String>) -> *mut c_char {
    into_c(guarded(|| match plugin() {
        Ok(p) => p.manifest_json().to_owned(),
        Err(e) => error_json(e.clone()),
    }))
}

/// The body of `atf_plugin_call`.
///
/// # Safety
///
/// `keyword` and `input` must be null or point to NUL-terminated strings
/// that stay valid for the call.
pub unsafe fn export_call(
    plugin: fn() -> &'static Result<Plugin, String>,
    keyword: *const c_char,
    input: *const c_char,
) -> *mut c_char {
    if keyword.is_null() || input.is_null() {
        return into_c(error_json("the plugin got a null pointer".into()));
    }
    // SAFETY: both are non-null NUL-terminated strings, per this function's contract.
    let (keyword, input) = unsafe { (CStr::from_ptr(keyword), CStr::from_ptr(input)) };
    into_c(guarded(|| match plugin() {
        Err(e) => error_json(e.clone()),
        Ok(p) => match keyword.to_str() {
            Ok(name) => p.call_json(name, input.to_bytes()),
            Err(_) => error_json("the keyword name is not UTF-8".into()),
        },
    }))
}

/// The body of `atf_plugin_free`.
///
/// # Safety
///
/// `text` must be null or a pointer returned by [`export_manifest`] or
/// [`export_call`] of this same library, not freed yet.
pub unsafe fn export_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: it came from `CString::into_raw` in `into_c`, per this function's contract.
        drop(unsafe { CString::from_raw(text) });
    }
}

/// Runs `f`, turning a panic into `{"error": "plugin panicked: ..."}`.
fn guarded(f: impl FnOnce() -> String) -> String {
    quiet_panics();
    PANIC_AT.with(|at| at.set(None));
    GUARDED.with(|g| g.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    match outcome {
        Ok(json) => json,
        Err(payload) => {
            let mut message = format!("plugin panicked: {}", panic_message(&*payload));
            if let Some(at) = PANIC_AT.with(Cell::take) {
                message.push_str(" (at ");
                message.push_str(&String::from_utf8_lossy(at.as_bytes()));
                message.push(')');
            }
            error_json(message)
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Where the last panic of this thread happened, as `file:line:column`,
/// kept in a fixed buffer so that the thread-local needs no destructor (a
/// destructor registered by a library keeps it from being unloaded).
#[derive(Clone, Copy)]
struct PanicAt {
    bytes: [u8; 160],
    len: usize,
}

impl PanicAt {
    fn new(text: &str) -> Self {
        let mut at = PanicAt {
            bytes: [0; 160],
            len: 0,
        };
        let mut end = text.len().min(at.bytes.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        at.bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        at.len = end;
        at
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

thread_local! {
    static PANIC_AT: Cell<Option<PanicAt>> = const { Cell::new(None) };
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the plugin's panic hook, once: a panic inside a call from the
/// runner prints nothing (the runner reports it as the step's error) and
/// notes where it happened; any other panic goes to the previous hook. Only
/// this library's copy of the standard library is affected.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            } else if let Some(loc) = info.location() {
                let text = format!("{}:{}:{}", loc.file(), loc.line(), loc.column());
                PANIC_AT.with(|at| at.set(Some(PanicAt::new(&text))));
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FnKeyword, json};
    use std::sync::OnceLock;

    fn plugin() -> &'static Result<Plugin, String> {
        static P: OnceLock<Result<Plugin, String>> = OnceLock::new();
        P.get_or_init(|| {
            Plugin::new(
                "demo",
                "atf-plugin-demo",
                "1.2.3",
                vec![
                    Box::new(FnKeyword::new(
                        KeywordSpec::new("echo", "returns its args").open_args(),
                        |call: &Call<'_>| {
                            Ok(json!({
                                "args": call.args,
                                "base_dir": call.base_dir,
                                "case_start_ms": call.case_start_ms,
                                "within": call.remaining() <= Duration::from_millis(1500),
                            }))
                        },
                    )),
                    Box::new(FnKeyword::new(
                        KeywordSpec::new("demo.fail", "fails"),
                        |_: &Call<'_>| Err("it failed".into()),
                    )),
                    Box::new(FnKeyword::new(
                        KeywordSpec::new("boom", "panics"),
                        |_: &Call<'_>| panic!("kaboom {}", 42),
                    )),
                    Box::new(FnKeyword::new(
                        KeywordSpec::new("mint", "declares a secret"),
                        |call: &Call<'_>| {
                            call.host.secret("minted-token-1234");
                            Ok(json!({"token": "minted-token-1234"}))
                        },
                    )),
                ],
            )
        })
    }

    /// Calls through the exported-function bodies, as the runner would.
    fn call(keyword: &CStr, input: &CStr) -> String {
        // SAFETY: both are valid C strings; the answer is freed right after reading.
        unsafe {
            let out = export_call(plugin, keyword.as_ptr(), input.as_ptr());
            let text = CStr::from_ptr(out).to_str().unwrap().to_owned();
            export_free(out);
            text
        }
    }

    #[test]
    fn manifest_prefixes_names_and_round_trips() {
        let out = export_manifest(plugin);
        // SAFETY: a string from export_manifest, freed once.
        let bytes = unsafe { CStr::from_ptr(out).to_bytes().to_vec() };
        unsafe { export_free(out) };
        let m = parse_manifest(&bytes).unwrap();
        assert_eq!(m.abi_version, ABI_VERSION);
        assert_eq!(m.namespace, "demo");
        assert_eq!(m.plugin.name, "atf-plugin-demo");
        assert_eq!(m.plugin.version, "1.2.3");
        let names: Vec<_> = m.keywords.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["demo.echo", "demo.fail", "demo.boom", "demo.mint"]);
        assert!(m.keywords[0].open_args);
    }

    #[test]
    fn declared_secrets_travel_in_the_answer_to_the_host() {
        let answer = call(c"demo.mint", c"{}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["secrets"], json!(["minted-token-1234"]), "{answer}");
        struct Seen(std::sync::Mutex<Vec<String>>);
        impl crate::Host for Seen {
            fn check(&self, _: &Value, _: &Value) -> Result<Vec<String>, String> {
                Ok(Vec::new())
            }
            fn cancelled(&self) -> bool {
                false
            }
            fn secret(&self, value: &str) {
                self.0.lock().unwrap().push(value.into());
            }
        }
        let seen = Seen(Default::default());
        let result = decode_answer(answer.as_bytes(), &seen).unwrap();
        assert_eq!(result, json!({"token": "minted-token-1234"}));
        assert_eq!(*seen.0.lock().unwrap(), ["minted-token-1234"]);
    }

    #[test]
    fn call_passes_input_and_wraps_result() {
        let input = CString::new(
            r#"{"args":{"a":[1,"x"]},"timeout_ms":1500,"case_start_ms":7,"base_dir":"/cases"}"#,
        )
        .unwrap();
        let out: Value = serde_json::from_str(&call(c"demo.echo", &input)).unwrap();
        assert_eq!(
            out,
            json!({"ok": {"args": {"a": [1, "x"]}, "base_dir": "/cases", "case_start_ms": 7, "within": true}})
        );
    }

    #[test]
    fn errors_unknown_keywords_and_bad_input() {
        assert_eq!(call(c"demo.fail", c"{}"), r#"{"error":"it failed"}"#);
        assert_eq!(
            call(c"demo.nope", c"{}"),
            r#"{"error":"the plugin `demo` has no keyword `demo.nope`"}"#
        );
        let bad = call(c"demo.echo", c"{not json");
        assert!(
            bad.starts_with(r#"{"error":"the plugin got invalid input"#),
            "{bad}"
        );
        // SAFETY: null pointers are accepted and answered with an error.
        let out = unsafe { export_call(plugin, std::ptr::null(), c"{}".as_ptr()) };
        let text = unsafe { CStr::from_ptr(out).to_str().unwrap().to_owned() };
        unsafe { export_free(out) };
        assert!(text.contains("null pointer"));
        unsafe { export_free(std::ptr::null_mut()) };
    }

    #[test]
    fn panic_becomes_error_with_location() {
        let out: Value = serde_json::from_str(&call(c"demo.boom", c"{}")).unwrap();
        let message = out["error"].as_str().unwrap();
        assert!(
            message.starts_with("plugin panicked: kaboom 42 (at "),
            "{message}"
        );
        assert!(message.contains("abi.rs:"), "{message}");
        // The plugin keeps working after a panic.
        assert_eq!(call(c"demo.fail", c"{}"), r#"{"error":"it failed"}"#);
    }

    #[test]
    fn plugin_new_rejects_duplicates_and_bad_namespaces() {
        let kw = || -> Box<dyn Keyword> {
            Box::new(FnKeyword::new(KeywordSpec::new("x", ""), |_: &Call<'_>| {
                Ok(Value::Null)
            }))
        };
        let err = Plugin::new("ns", "n", "v", vec![kw(), kw()]).err().unwrap();
        assert_eq!(err, "the keyword `ns.x` is defined twice");
        assert!(Plugin::new("", "n", "v", vec![]).is_err());
        assert!(Plugin::new("a.b", "n", "v", vec![]).is_err());
    }

    #[test]
    fn runner_side_codecs() {
        let args = json!({"k": "v"});
        let call = Call {
            args: &args,
            deadline: Instant::now() + Duration::from_secs(5),
            case_start_ms: 99,
            base_dir: Path::new("/x"),
            host: &NoHost,
        };
        let input: CallInput<'_> = serde_json::from_str(&encode_input(&call)).unwrap();
        assert_eq!(*input.args, args);
        assert!(input.timeout_ms > 4000 && input.timeout_ms <= 5000);
        assert_eq!(input.case_start_ms, 99);
        assert_eq!(input.base_dir, "/x");

        assert_eq!(decode_output(br#"{"ok":{"a":1}}"#), Ok(json!({"a": 1})));
        assert_eq!(
            decode_output(br#"{"error":"no"}"#),
            Err(KeywordError::new("no"))
        );
        for bad in [
            &b"{oops"[..],
            b"[]",
            br#"{"ok":1,"error":"x"}"#,
            b"",
            b"\xff",
        ] {
            let err = decode_output(bad).unwrap_err().message;
            assert!(
                err.starts_with("the plugin returned an invalid answer"),
                "{err}"
            );
        }
        let long = vec![b'x'; 1000];
        assert!(decode_output(&long).unwrap_err().message.len() < 400);

        assert!(
            parse_manifest(br#"{"error":"no config"}"#)
                .unwrap_err()
                .contains("no config")
        );
        assert!(parse_manifest(b"{}").unwrap_err().contains("malformed"));
        assert!(parse_manifest(b"nope").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn panic_at_truncates_on_char_boundary() {
        let text = "é".repeat(100);
        let at = PanicAt::new(&text);
        assert!(std::str::from_utf8(at.as_bytes()).is_ok());
        assert_eq!(at.len, 160);
    }
}
