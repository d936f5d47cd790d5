//! [`export_plugin!`](crate::export_plugin): the one line that turns a crate
//! of keywords into an atf plugin.
//!
//! It generates the four C symbols of [`crate::abi`] for the calling crate,
//! which must be built as a `cdylib`. The keywords are built once, on the
//! first call from the runner, and every call after that is served from
//! them; a panic while building them is reported as the plugin failing to
//! start, and the runner skips the plugin with a warning.

/// Exports a set of keywords as an atf plugin (a `cdylib` crate).
///
/// `keywords` is either a list of values that implement
/// [`Keyword`](crate::Keyword), or any expression giving a
/// `Vec<Box<dyn Keyword>>`. Keywords named without the namespace get it:
/// `KeywordSpec::new("sm3", ..)` in namespace `sign` is `sign.sm3`.
///
/// ```
/// use atf_sdk::{Call, FnKeyword, KeywordResult, KeywordSpec, json};
///
/// fn greet(call: &Call<'_>) -> KeywordResult {
///     let name = call.required_str("name")?;
///     Ok(json!({ "greeting": format!("hello, {name}") }))
/// }
///
/// atf_sdk::export_plugin! {
///     namespace: "hello",
///     keywords: [
///         FnKeyword::new(
///             KeywordSpec::new("greet", "Greets someone")
///                 .required("name", "string", "who to greet")
///                 .result("`greeting`: the text"),
///             greet,
///         ),
///     ],
/// }
/// # fn main() {}
/// ```
///
/// The crate's name and version (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`)
/// become the plugin's name and version in `atf keywords`.
#[macro_export]
macro_rules! export_plugin {
    (namespace: $namespace:expr, keywords: [$($keyword:expr),* $(,)?] $(,)?) => {
        $crate::export_plugin! {
            namespace: $namespace,
            keywords: {
                let keywords: ::std::vec::Vec<::std::boxed::Box<dyn $crate::Keyword>> =
                    ::std::vec![$(::std::boxed::Box::new($keyword)),*];
                keywords
            },
        }
    };
    (namespace: $namespace:expr, keywords: $keywords:expr $(,)?) => {
        #[doc(hidden)]
        fn __atf_plugin() -> &'static ::std::result::Result<$crate::abi::Plugin, ::std::string::String> {
            static PLUGIN: ::std::sync::OnceLock<
                ::std::result::Result<$crate::abi::Plugin, ::std::string::String>,
            > = ::std::sync::OnceLock::new();
            PLUGIN.get_or_init(|| {
                $crate::abi::Plugin::new(
                    $namespace,
                    ::std::env!("CARGO_PKG_NAME"),
                    ::std::env!("CARGO_PKG_VERSION"),
                    $keywords,
                )
            })
        }

        /// The plugin ABI version this library speaks.
        #[unsafe(no_mangle)]
        pub extern "C" fn atf_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// The plugin's manifest as JSON; free it with `atf_plugin_free`.
        #[unsafe(no_mangle)]
        pub extern "C" fn atf_plugin_manifest() -> *mut ::std::ffi::c_char {
            $crate::abi::export_manifest(__atf_plugin)
        }

        /// Runs one keyword; free the answer with `atf_plugin_free`.
        ///
        /// # Safety
        ///
        /// Both arguments must be NUL-terminated strings valid for the call.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn atf_plugin_call(
            keyword: *const ::std::ffi::c_char,
            input: *const ::std::ffi::c_char,
        ) -> *mut ::std::ffi::c_char {
            // SAFETY: forwarded from this function's own contract.
            unsafe { $crate::abi::export_call(__atf_plugin, keyword, input) }
        }

        /// Takes the runner's services (expectation checks, cancellation).
        ///
        /// # Safety
        ///
        /// `host` must be null or a valid `AtfHostV1` that outlives the library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn atf_plugin_set_host(host: *const $crate::abi::HostV1) {
            // SAFETY: forwarded from this function's own contract.
            unsafe { $crate::abi::export_set_host(host) }
        }

        /// Frees a string returned by this library.
        ///
        /// # Safety
        ///
        /// `text` must come from this library and not be freed yet.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn atf_plugin_free(text: *mut ::std::ffi::c_char) {
            // SAFETY: forwarded from this function's own contract.
            unsafe { $crate::abi::export_free(text) }
        }
    };
}
