//! Integration tests: the real `atf` binary on case files, against a real
//! HTTP server started by the test.

mod browser;
mod cli;
mod console;
mod editor;
mod events;
mod extract;
mod flow;
mod fuzz;
mod http;
mod interrupt;
mod load;
mod reports;
mod serve;
mod server;
#[path = "../support/mod.rs"]
mod support;
#[path = "../../../reports/tests/common/tools.rs"]
mod tools;
mod util;
