//! Integration tests: the real `atf` binary on case files, against a real
//! HTTP server started by the test.

mod cli;
mod flow;
mod http;
mod interrupt;
mod load;
mod server;
mod util;
