//! One plugin-host process, seen from atf: `atf __plugin-host COPY` started
//! in a process group of its own (a Ctrl-C on the terminal reaches atf
//! only, which decides what to stop), its stdin and stdout carrying
//! [`super::frame`]s, the last lines of its stderr kept for the message
//! when it dies. Whatever goes wrong — a crash, an exit, a call past its
//! deadline, a garbled frame — the process is killed and reaped, and the
//! failure says what happened: the signal or exit status, and what the
//! plugin last wrote to stderr.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use atf_sdk::abi::{Manifest, parse_manifest};
use serde_json::Value;

use super::frame::{self, WaitError};

/// How to start a plugin host: a program and its leading arguments; the
/// library to load is added last. By default this same binary with the
/// hidden subcommand `__plugin-host`.
#[derive(Debug, Clone)]
pub struct HostCommand {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the library path.
    pub args: Vec<OsString>,
}

impl HostCommand {
    /// `atf __plugin-host` of the running `atf` binary.
    pub fn current_exe() -> io::Result<HostCommand> {
        Ok(HostCommand {
            program: std::env::current_exe()?,
            args: vec![OsString::from(super::serve::SUBCOMMAND)],
        })
    }
}

/// How long a new host may take to load its library and send the manifest.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The stderr bytes kept for messages.
const TAIL: usize = 2048;

/// Why a host process failed; it is gone (killed and reaped) by then.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It did not answer before the deadline.
    TimedOut,
    /// The run was interrupted while it worked.
    Cancelled,
    /// It ended by itself: a crash, an abort, an `exit()`.
    Died {
        /// How it ended ("killed by signal 11 (SIGSEGV)").
        how: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// It could not be started, or the pipe failed.
    Io(String),
    /// It sent something that is not a frame of the protocol.
    Protocol(String),
}

impl Failure {
    /// The failure in words, for a step error or a warning; `doing` says
    /// what the host was doing ("while running `x.y`").
    pub(crate) fn describe(&self, doing: &str) -> String {
        match self {
            Failure::TimedOut => format!("it did not finish in time {doing}"),
            Failure::Cancelled => format!("the run was interrupted {doing}"),
            Failure::Died { how, stderr } => {
                let mut text = format!("its process {how} {doing}");
                if how.contains("exited") {
                    text.push_str(" (a plugin must not end its process)");
                }
                if !stderr.is_empty() {
                    text.push_str("; it wrote: ");
                    text.push_str(stderr);
                }
                text
            }
            Failure::Io(e) => format!("its process failed {doing}: {e}"),
            Failure::Protocol(e) => format!("its process sent a bad answer {doing}: {e}"),
        }
    }
}

/// A running plugin host.
pub(crate) struct HostProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: Arc<Mutex<Vec<u8>>>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl HostProcess {
    /// Starts a host for the library `lib` and reads its hello within
    /// [`HELLO_TIMEOUT`]: the plugin's manifest, or why it cannot run
    /// (`Ok(Err(reason))`: the library is not a usable plugin).
    pub(crate) fn start(
        command: &HostCommand,
        lib: &Path,
    ) -> Result<(HostProcess, Result<Manifest, String>), Failure> {
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .arg(lib)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: the terminal's Ctrl-C goes to atf,
            // which decides what to stop.
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::Io(format!("cannot start {}: {e}", command.program.display())))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Io("its pipes are missing".into()));
        };
        let tail = Arc::new(Mutex::new(Vec::new()));
        keep_tail(stderr, tail.clone());
        let mut host = HostProcess {
            child,
            stdin,
            stdout,
            stderr: tail,
            buf: Vec::new(),
            out: Vec::new(),
        };
        for fd in [host.stdin.as_raw_fd(), host.stdout.as_raw_fd()] {
            if let Err(e) = frame::set_nonblocking(fd) {
                return Err(host.fail(Failure::Io(e.to_string())));
            }
        }
        let until = Instant::now() + HELLO_TIMEOUT;
        if let Err(e) = frame::receive(&mut host.stdout, &mut host.buf, until, &|| false) {
            return Err(host.fail_wait(e));
        }
        let hello = match serde_json::from_slice::<Value>(&host.buf) {
            Ok(Value::Object(mut m)) => match (m.remove("ok"), m.remove("error")) {
                (Some(manifest), None) => {
                    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
                    parse_manifest(&bytes)
                }
                (None, Some(Value::String(why))) => Err(why),
                _ => return Err(host.fail(Failure::Protocol("a malformed hello".into()))),
            },
            _ => return Err(host.fail(Failure::Protocol("a hello that is not JSON".into()))),
        };
        Ok((host, hello))
    }

    /// Whether it has ended (while idle, say).
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs the keyword `name` with `input` (the call's input JSON) and
    /// returns the plugin's answer bytes. On any failure the process is
    /// gone and the failure says why.
    pub(crate) fn call(
        &mut self,
        name: &str,
        input: &[u8],
        until: Instant,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<&[u8], Failure> {
        if let Err(e) = frame::send(
            &mut self.stdin,
            &mut self.out,
            &[name.as_bytes(), b"\0", input],
            until,
            cancelled,
        ) {
            return Err(self.fail_wait(e));
        }
        match frame::receive(&mut self.stdout, &mut self.buf, until, cancelled) {
            Ok(()) => Ok(&self.buf),
            Err(e) => Err(self.fail_wait(e)),
        }
    }

    /// Turns a failed wait into a failure, ending the process.
    fn fail_wait(&mut self, e: WaitError) -> Failure {
        let failure = match e {
            WaitError::Deadline => Failure::TimedOut,
            WaitError::Cancelled => Failure::Cancelled,
            WaitError::Closed => {
                // It closed its end: it is ending or has ended. Give it a
                // moment to be reaped so that the status is known.
                let how = self.reap(Duration::from_secs(2));
                return Failure::Died {
                    how,
                    stderr: self.stderr_tail(),
                };
            }
            WaitError::TooLong(n) => Failure::Protocol(format!(
                "an answer of {n} bytes (at most {} are accepted)",
                frame::MAX_FRAME
            )),
            WaitError::Io(e) => Failure::Io(e.to_string()),
        };
        self.fail(failure)
    }

    /// Ends the process and returns `failure`.
    fn fail(&mut self, failure: Failure) -> Failure {
        self.kill();
        failure
    }

    /// Waits up to `grace` for the process to end by itself, then kills
    /// it; says how it ended.
    fn reap(&mut self, grace: Duration) -> String {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return describe_status(status),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                _ => {
                    self.kill();
                    return "closed its pipe and was killed".into();
                }
            }
        }
    }

    /// Kills the process and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The end of what the process wrote to stderr, on one line. The
    /// reader thread may still be catching up with a process that just
    /// died: wait for it briefly.
    fn stderr_tail(&self) -> String {
        std::thread::sleep(Duration::from_millis(20));
        let bytes = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&bytes);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `stderr` on a thread of its own until it ends, keeping its last
/// [`TAIL`] bytes.
fn keep_tail(mut stderr: impl Read + Send + 'static, tail: Arc<Mutex<Vec<u8>>>) {
    let spawned = std::thread::Builder::new()
        .name("atf-plugin-stderr".into())
        .spawn(move || {
            let mut chunk = [0u8; 1024];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                        t.extend_from_slice(&chunk[..n]);
                        if t.len() > TAIL {
                            let cut = t.len() - TAIL;
                            t.drain(..cut);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
    // Without the thread the pipe fills up and the plugin blocks on stderr
    // until its step times out: acceptable, and said by that timeout.
    drop(spawned);
}

/// "exited with status 3", "was killed by signal 11 (SIGSEGV)".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal} ({})", signal_name(signal));
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended".into(),
    }
}

/// The usual name of a signal.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV, a segmentation fault",
        libc::SIGABRT => "SIGABRT, an abort",
        libc::SIGBUS => "SIGBUS, a bus error",
        libc::SIGILL => "SIGILL, an illegal instruction",
        libc::SIGFPE => "SIGFPE, an arithmetic error",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_in_words() {
        assert_eq!(
            describe_status(ExitStatus::from_raw(11)),
            "was killed by signal 11 (SIGSEGV, a segmentation fault)"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        let died = Failure::Died {
            how: "exited with status 0".into(),
            stderr: String::new(),
        };
        assert_eq!(
            died.describe("while running `x.y`"),
            "its process exited with status 0 while running `x.y` (a plugin must not end its process)"
        );
    }

    #[test]
    fn a_program_that_is_no_host_fails_cleanly() {
        // `true` exits at once without a hello.
        let cmd = HostCommand {
            program: PathBuf::from("true"),
            args: Vec::new(),
        };
        match HostProcess::start(&cmd, Path::new("/nowhere.so")) {
            Err(Failure::Died { how, .. }) => assert_eq!(how, "exited with status 0"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("`true` is no plugin host"),
        }
        let missing = HostCommand {
            program: PathBuf::from("/no/such/atf"),
            args: Vec::new(),
        };
        assert!(matches!(
            HostProcess::start(&missing, Path::new("x.so")),
            Err(Failure::Io(_))
        ));
    }
}
