//! One version of an isolated plugin: its manifest and the plugin-host
//! processes that serve it. A call takes an idle host (or starts one),
//! and gives it back when the call ends well; a host that crashed, exited,
//! hung past the deadline or was cut short by Ctrl-C is killed and
//! dropped, and the next call starts a fresh one. As many hosts run as
//! calls run at once, so parallel cases never wait for each other.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use atf_sdk::abi::{Manifest, decode_answer};
use atf_sdk::{Call, KeywordError, KeywordResult};

use super::library::{OpenError, check_manifest};
use super::process::{Failure, HostCommand, HostProcess};

/// How long after the step's deadline a plugin still has to answer (it is
/// told the deadline, and may well be sending its own timeout error).
const GRACE: Duration = Duration::from_millis(250);

/// The host processes of one version of a plugin file.
pub(crate) struct HostPool {
    command: HostCommand,
    copy: PathBuf,
    source: PathBuf,
    manifest: Manifest,
    names: HashSet<String>,
    idle: Mutex<Vec<HostProcess>>,
    live: Arc<AtomicUsize>,
}

impl HostPool {
    /// Starts a host on the private copy `copy` of the plugin file
    /// `source` and reads the manifest; that host stays ready for the
    /// first call. `live` counts the loaded versions of the file.
    pub(crate) fn open(
        command: &HostCommand,
        copy: &Path,
        source: &Path,
        live: Arc<AtomicUsize>,
    ) -> Result<HostPool, OpenError> {
        let (host, manifest) = read_manifest(command, copy)?;
        let names = check_manifest(&manifest).map_err(OpenError::Manifest)?;
        live.fetch_add(1, Ordering::SeqCst);
        Ok(HostPool {
            command: command.clone(),
            copy: copy.to_path_buf(),
            source: source.to_path_buf(),
            manifest,
            names,
            idle: Mutex::new(vec![host]),
            live,
        })
    }

    /// What the plugin says about itself.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether this version has the keyword `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Runs the keyword `name` with `input` (the call's input JSON) in a
    /// host process, within the call's deadline.
    pub(crate) fn call(&self, name: &str, input: &str, call: &Call<'_>) -> KeywordResult {
        let budget = call.remaining();
        let mut host = self.take(name)?;
        let until = call.deadline + GRACE;
        let cancelled = || call.host.cancelled();
        let answer = host
            .call(name, input.as_bytes(), until, &cancelled)
            .map(|bytes| decode_answer(bytes, call.host));
        match answer {
            Ok(result) => {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(host);
                result
            }
            Err(failure) => Err(self.error(name, &failure, budget)),
        }
    }

    /// An idle host still alive, or a new one.
    fn take(&self, name: &str) -> Result<HostProcess, KeywordError> {
        loop {
            let next = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match next {
                // One that ended while idle (killed from outside) is dropped.
                Some(mut host) => {
                    if !host.exited() {
                        return Ok(host);
                    }
                }
                None => break,
            }
        }
        match HostProcess::start(&self.command, &self.copy) {
            Ok((host, Ok(_))) => Ok(host),
            Ok((_, Err(why))) => Err(KeywordError::new(format!(
                "plugin {}: a new process for `{name}` could not load it: {why}",
                self.source.display()
            ))),
            Err(failure) => Err(KeywordError::new(format!(
                "plugin {}: {}",
                self.source.display(),
                failure.describe(&format!("while starting for `{name}`"))
            ))),
        }
    }

    /// The step error for a failed call.
    /// `budget` is the time the call had.
    fn error(&self, name: &str, failure: &Failure, budget: Duration) -> KeywordError {
        let plugin = self.source.display();
        KeywordError::new(match failure {
            Failure::TimedOut => format!(
                "plugin {plugin}: `{name}` did not finish within its timeout ({} ms); its process was killed",
                budget.as_millis()
            ),
            Failure::Cancelled => format!(
                "plugin {plugin}: `{name}` was stopped because the run is being interrupted; its process was killed"
            ),
            other => format!(
                "plugin {plugin}: {}",
                other.describe(&format!("while running `{name}`"))
            ),
        })
    }
}

impl Drop for HostPool {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a host on `lib` and reads its manifest. A host that crashes,
/// exits or hangs while loading is an [`OpenError::Host`].
pub(crate) fn read_manifest(
    command: &HostCommand,
    lib: &Path,
) -> Result<(HostProcess, Manifest), OpenError> {
    match HostProcess::start(command, lib) {
        Ok((host, Ok(manifest))) => Ok((host, manifest)),
        Ok((_, Err(why))) => Err(OpenError::Refused(why)),
        Err(failure) => Err(OpenError::Host(format!(
            "its plugin host failed: {}",
            failure.describe("while loading it and reading its manifest")
        ))),
    }
}
