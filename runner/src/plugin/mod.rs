//! The plugin host: finds plugin libraries in the plugin folders, checks
//! their ABI version, and offers their keywords as [`atf_sdk::Keyword`]s
//! whose calls cross the C ABI of [`atf_sdk::abi`] as JSON. A plugin file
//! rebuilt while atf runs is reloaded for the steps that start afterwards
//! (see `file`); `library` holds one loaded copy; `keyword` is the
//! [`atf_sdk::Keyword`] wrapper; `host` discovers and loads.
//!
//! Plugins run out of the atf process by default, so that a segfault, an
//! abort, an `exit()`, a stack overflow or an endless loop fails one step
//! instead of the run: `serve` is the plugin-host process (`atf
//! __plugin-host LIB`), `process` one such process seen from atf, `pool`
//! the processes of one plugin version, `frame` the wire between them.

mod file;
mod frame;
mod host;
mod keyword;
mod library;
mod pool;
mod process;
mod serve;
mod services;

pub use host::{LoadOutcome, PluginHost, PluginInfo, PluginOptions};
pub use process::HostCommand;
pub use serve::{SUBCOMMAND, serve};
pub(crate) use services::check_messages;
