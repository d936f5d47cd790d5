//! The plugin-host process: `atf __plugin-host LIBRARY` loads one plugin
//! library and serves its keywords to the atf that started it, one call at
//! a time, over [`super::frame`]s on stdin and stdout.
//!
//! Before the library is touched, the protocol moves to private copies of
//! stdin and stdout: the plugin's own prints go to stderr (which atf
//! keeps the end of, for crash messages) and it reads an empty stdin, so
//! nothing it does can garble a frame. A watchdog thread ends the process
//! as soon as atf's end of the pipe closes — atf exited, or was killed —
//! even while a keyword is stuck in a loop.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serde_json::json;

use super::frame;
use super::library::Library;

/// The hidden subcommand that starts a plugin host.
pub const SUBCOMMAND: &str = "__plugin-host";

/// Serves the plugin library at `lib` until stdin ends; returns the exit
/// code (0 at a clean end, 1 when the protocol broke, 2 when the library is
/// not a usable plugin).
pub fn serve(lib: &Path) -> i32 {
    let (input, output) = match private_pipes() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("atf plugin host: cannot set up its pipes: {e}");
            return 1;
        }
    };
    watch_for_hangup(input);
    // SAFETY: both descriptors were just duplicated for this use alone.
    let (input, output) = unsafe { (File::from_raw_fd(input), File::from_raw_fd(output)) };
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    let library = Library::open(lib, Arc::new(AtomicUsize::new(0)));
    let hello = match &library {
        Ok(l) => json!({ "ok": l.manifest() }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let hello = serde_json::to_vec(&hello).unwrap_or_else(|_| b"{}".to_vec());
    if frame::write_blocking(&mut output, &hello).is_err() {
        return 1;
    }
    let Ok(library) = library else {
        return 2;
    };
    let mut request = Vec::new();
    loop {
        match frame::read_blocking(&mut input, &mut request) {
            Ok(None) => return 0,
            Ok(Some(())) => {}
            Err(_) => return 1,
        }
        let answer = answer(&library, &request);
        if frame::write_blocking(&mut output, &answer).is_err() {
            return 1;
        }
    }
}

/// Runs one request (`name NUL input`) and returns the answer bytes.
fn answer(library: &Library, request: &[u8]) -> Vec<u8> {
    let error = |message: &str| {
        serde_json::to_vec(&json!({ "error": message })).unwrap_or_else(|_| b"{}".to_vec())
    };
    let Some(split) = request.iter().position(|b| *b == 0) else {
        return error("the plugin host got a malformed request");
    };
    let (name, input) = (&request[..split], &request[split + 1..]);
    let (Ok(name), Ok(input)) = (
        std::ffi::CString::new(name),
        std::ffi::CString::new(input.to_vec()),
    ) else {
        return error("the arguments cannot be passed to a plugin");
    };
    match library.call_raw(&name, &input) {
        Ok(bytes) => bytes,
        Err(message) => error(&message),
    }
}

/// Moves the protocol to duplicates of stdin and stdout, points stdin at
/// `/dev/null` and stdout at stderr. Returns (input, output).
fn private_pipes() -> std::io::Result<(RawFd, RawFd)> {
    // SAFETY: plain descriptor calls on the standard descriptors of this
    // process, before any other thread exists.
    unsafe {
        let input = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        let output = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if input < 0 || output < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null < 0 || libc::dup2(null, 0) < 0 || libc::dup2(2, 1) < 0 || libc::close(null) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((input, output))
    }
}

/// Ends the process when the other end of `input` hangs up, whatever the
/// main thread is doing.
fn watch_for_hangup(input: RawFd) {
    let spawned = std::thread::Builder::new()
        .name("atf-plugin-watchdog".into())
        .spawn(move || {
            loop {
                let mut pfd = libc::pollfd {
                    fd: input,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; `input` stays open for the
                // life of the process.
                let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
                if rc > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    // SAFETY: ends the process at once, running nothing of
                    // the plugin's.
                    unsafe { libc::_exit(0) };
                }
            }
        });
    // Without the watchdog a stuck plugin outlives a killed atf; atf still
    // kills it itself whenever it can.
    drop(spawned);
}
