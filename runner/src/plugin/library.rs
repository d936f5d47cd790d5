//! One loaded copy of a plugin library: opens it, checks its ABI version
//! before anything else, reads and validates its manifest, and makes calls
//! through its C symbols. Nothing the plugin returns is trusted: a null
//! pointer, text that is not JSON or JSON of the wrong shape is an error
//! with a message, never a panic.

use std::collections::HashSet;
use std::ffi::CStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atf_sdk::abi::{
    ABI_VERSION, AbiVersionFn, CallFn, FreeFn, Manifest, ManifestFn, SYM_ABI_VERSION, SYM_CALL,
    SYM_FREE, SYM_MANIFEST, SYM_SET_HOST, SetHostFn, decode_answer, parse_manifest,
};
use atf_sdk::{Host, KeywordError, KeywordResult};

/// Why a file could not be used as a plugin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The system loader refused it.
    #[error("not a loadable library ({0})")]
    NotALibrary(String),
    /// A library, but not an atf plugin.
    #[error("not an atf plugin (it has no `{0}` symbol)")]
    NotAPlugin(String),
    /// A plugin of another ABI version.
    #[error(
        "it is a plugin of ABI version {found}, but this atf speaks plugin ABI version {expected}: rebuild it against an atf-sdk of ABI version {expected}"
    )]
    WrongAbi {
        /// What the plugin speaks.
        found: u32,
        /// What this atf speaks.
        expected: u32,
    },
    /// The manifest is missing, not JSON, or says the plugin failed to start.
    #[error("{0}")]
    Manifest(String),
    /// A plugin-host process said why it could not use the library (the
    /// text of one of the errors above).
    #[error("{0}")]
    Refused(String),
    /// The plugin-host process failed while loading the library: it
    /// crashed, exited or hung while the manifest was read.
    #[error("{0}")]
    Host(String),
}

/// The error of a call whose answer was a null pointer.
const NULL_ANSWER: &str = "the plugin returned no answer (a null pointer)";

/// A plugin library loaded from one private copy of its file. Dropping the
/// last `Arc` to it unloads it.
pub(crate) struct Library {
    manifest: Manifest,
    names: HashSet<String>,
    call: CallFn,
    free: FreeFn,
    live: Arc<AtomicUsize>,
    // Declared last so that it is dropped (unloaded) after everything above.
    _lib: libloading::Library,
}

impl Library {
    /// Loads the library at `path` (a private copy) and checks it. `live`
    /// counts the loaded versions of one plugin file.
    pub(crate) fn open(path: &Path, live: Arc<AtomicUsize>) -> Result<Library, OpenError> {
        // SAFETY: loading a library runs its initialisers; that is what
        // loading a plugin means. The functions below are looked up with
        // the C signatures the plugin ABI defines.
        unsafe {
            let lib = open_raw(path).map_err(|e| OpenError::NotALibrary(error_text(&e)))?;
            let version: AbiVersionFn = symbol(&lib, SYM_ABI_VERSION)?;
            let found = version();
            if found != ABI_VERSION {
                return Err(OpenError::WrongAbi {
                    found,
                    expected: ABI_VERSION,
                });
            }
            let manifest_fn: ManifestFn = symbol(&lib, SYM_MANIFEST)?;
            let call: CallFn = symbol(&lib, SYM_CALL)?;
            let free: FreeFn = symbol(&lib, SYM_FREE)?;
            let raw = manifest_fn();
            if raw.is_null() {
                return Err(OpenError::Manifest("its manifest is empty".into()));
            }
            let parsed = parse_manifest(CStr::from_ptr(raw).to_bytes());
            free(raw);
            let manifest = parsed.map_err(OpenError::Manifest)?;
            // Optional: a plugin built before the runner's services existed
            // runs without them.
            if let Ok(set_host) = lib.get::<SetHostFn>(SYM_SET_HOST) {
                set_host(&super::services::HOST_V1);
            }
            let names = check_manifest(&manifest).map_err(OpenError::Manifest)?;
            live.fetch_add(1, Ordering::SeqCst);
            Ok(Library {
                manifest,
                names,
                call,
                free,
                live,
                _lib: lib,
            })
        }
    }

    /// What the plugin says about itself.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether this version of the plugin has the keyword `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Runs the keyword `name` with the `input` JSON of the plugin ABI.
    pub(crate) fn call(&self, name: &CStr, input: &CStr, host: &dyn Host) -> KeywordResult {
        // SAFETY: both are valid C strings that outlive the call; the answer
        // is read before it goes back to the plugin's own `free`, once.
        unsafe {
            let out = (self.call)(name.as_ptr(), input.as_ptr());
            if out.is_null() {
                return Err(KeywordError::new(NULL_ANSWER));
            }
            let result = decode_answer(CStr::from_ptr(out).to_bytes(), host);
            (self.free)(out);
            result
        }
    }

    /// Like [`Library::call`], but returns the plugin's answer bytes as
    /// they are (a plugin host passes them on undecoded).
    pub(crate) fn call_raw(&self, name: &CStr, input: &CStr) -> Result<Vec<u8>, String> {
        // SAFETY: as in `call`.
        unsafe {
            let out = (self.call)(name.as_ptr(), input.as_ptr());
            if out.is_null() {
                return Err(NULL_ANSWER.into());
            }
            let bytes = CStr::from_ptr(out).to_bytes().to_vec();
            (self.free)(out);
            Ok(bytes)
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Opens a library resolving all its symbols now (a missing one fails here,
/// not in the middle of a step) and keeping them out of the global scope
/// (two plugins export the same symbol names).
unsafe fn open_raw(path: &Path) -> Result<libloading::Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // SAFETY: forwarded from this function's contract.
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL).map(Into::into) }
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded from this function's contract.
        unsafe { libloading::Library::new(path) }
    }
}

/// Looks up a function symbol of the plugin ABI.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &CStr) -> Result<T, OpenError> {
    // SAFETY: the caller names the type the ABI defines for this symbol.
    unsafe { lib.get::<T>(name) }
        .map(|sym| *sym)
        .map_err(|_| OpenError::NotAPlugin(name.to_string_lossy().into_owned()))
}

/// A loader error with its cause (libloading keeps the `dlerror` text there).
fn error_text(e: &libloading::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks what the runner relies on: a namespace without dots, and every
/// keyword named `namespace.name` once. Returns the keyword names.
pub(crate) fn check_manifest(m: &Manifest) -> Result<HashSet<String>, String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '$')
    };
    if !plain(&m.namespace) || m.namespace.contains('.') {
        return Err(format!(
            "its manifest has an invalid namespace `{}`",
            m.namespace
        ));
    }
    let mut names = HashSet::with_capacity(m.keywords.len());
    for spec in &m.keywords {
        let rest = spec
            .name
            .strip_prefix(&m.namespace)
            .and_then(|r| r.strip_prefix('.'));
        if !rest.is_some_and(plain) {
            return Err(format!(
                "its manifest names a keyword `{}`, not `{}.<name>`",
                spec.name, m.namespace
            ));
        }
        if !names.insert(spec.name.clone()) {
            return Err(format!(
                "its manifest lists the keyword `{}` twice",
                spec.name
            ));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atf_sdk::KeywordSpec;
    use atf_sdk::abi::PluginMeta;

    fn manifest(namespace: &str, names: &[&str]) -> Manifest {
        Manifest {
            abi_version: ABI_VERSION,
            namespace: namespace.into(),
            plugin: PluginMeta {
                name: "p".into(),
                version: "1".into(),
            },
            sdk_version: String::new(),
            keywords: names.iter().map(|n| KeywordSpec::new(*n, "")).collect(),
        }
    }

    #[test]
    fn manifest_checks() {
        assert!(check_manifest(&manifest("sign", &["sign.sm3", "sign.sm4_encrypt"])).is_ok());
        assert!(check_manifest(&manifest("sign", &[])).is_ok());
        for (ns, names) in [
            ("", &["x"][..]),
            ("a.b", &["a.b.c"][..]),
            ("sign", &["sm3"][..]),
            ("sign", &["signx.sm3"][..]),
            ("sign", &["sign."][..]),
            ("sign", &["sign.a b"][..]),
            ("sign", &["sign.a\0"][..]),
            ("sign", &["sign.a", "sign.a"][..]),
        ] {
            assert!(
                check_manifest(&manifest(ns, names)).is_err(),
                "{ns} {names:?}"
            );
        }
    }

    #[test]
    fn garbage_is_not_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libjunk.so");
        std::fs::write(&path, b"definitely not ELF").unwrap();
        let live = Arc::new(AtomicUsize::new(0));
        match Library::open(&path, live.clone()) {
            Err(OpenError::NotALibrary(text)) => assert!(!text.is_empty()),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("garbage loaded"),
        }
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}
