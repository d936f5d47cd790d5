//! The plugin host: finds plugin libraries in the plugin folders, checks
//! their ABI version, and offers their keywords as [`atf_sdk::Keyword`]s
//! whose calls cross the C ABI of [`atf_sdk::abi`] as JSON. A plugin file
//! rebuilt while atf runs is reloaded for the steps that start afterwards
//! (see `file`); `library` holds one loaded copy; `keyword` is the
//! [`atf_sdk::Keyword`] wrapper; `host` discovers and loads.

mod file;
mod host;
mod keyword;
mod library;

pub use host::{LoadOutcome, PluginHost, PluginInfo};
