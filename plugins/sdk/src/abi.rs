//! The C ABI between the runner and a plugin library. (Filled in by the plugin work.)

/// The version of the plugin ABI this SDK speaks.
pub const ABI_VERSION: u32 = 1;
