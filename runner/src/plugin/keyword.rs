//! A plugin's keyword as the engine sees it: an [`atf_sdk::Keyword`] whose
//! calls go through the plugin ABI — the call encoded as JSON, the plugin
//! version in use picked (and reloaded if its file changed) as the call
//! starts, and held until the call ends — in a plugin-host process, or in
//! atf itself for a plugin opted into that.

use std::ffi::CString;
use std::sync::Arc;

use atf_sdk::abi::{encode_input, encode_input_numbered};
use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec};

use super::file::{Engine, PluginFile};
use super::services::Registered;

/// One keyword of a plugin file.
pub(crate) struct PluginKeyword {
    name: CString,
    spec: KeywordSpec,
    file: Arc<PluginFile>,
}

impl PluginKeyword {
    /// The keyword `spec` of `file` (its name was checked to hold no NUL).
    pub(crate) fn new(spec: KeywordSpec, file: Arc<PluginFile>) -> Option<PluginKeyword> {
        let name = CString::new(spec.name.clone()).ok()?;
        Some(PluginKeyword { name, spec, file })
    }
}

impl Keyword for PluginKeyword {
    fn spec(&self) -> KeywordSpec {
        let loaded = self.file.loaded();
        loaded
            .lib
            .manifest()
            .keywords
            .iter()
            .find(|k| k.name == self.spec.name)
            .unwrap_or(&self.spec)
            .clone()
    }

    fn call(&self, call: &Call<'_>) -> KeywordResult {
        // Held until the call returns: a reload meanwhile leaves this
        // version loaded for this call.
        let loaded = self.file.for_call();
        if !loaded.lib.has(&self.spec.name) {
            return Err(KeywordError::new(format!(
                "the keyword `{}` is no longer in plugin file {} since it was rebuilt; restart atf to reload the list of keywords",
                self.spec.name,
                self.file.source().display()
            )));
        }
        match &loaded.lib {
            Engine::Isolated(pool) => pool.call(&self.spec.name, &encode_input(call), call),
            Engine::InProcess(lib) => {
                // Numbered, so the plugin can ask whether the run is interrupted.
                let registered = Registered::new(call.host);
                let input = encode_input_numbered(call, registered.number());
                let input = CString::new(input)
                    .map_err(|_| KeywordError::new("the arguments cannot be passed to a plugin"))?;
                lib.call(&self.name, &input, call.host)
            }
        }
    }
}
