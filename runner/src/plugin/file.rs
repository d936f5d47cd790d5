//! One plugin file and its hot reload.
//!
//! The file itself is never loaded: each version of it is copied to a
//! unique name in a private folder of this run and loaded from there, so
//! that a rebuild can overwrite the original at any time and the system
//! loader, which caches libraries by path (and by inode), always sees a new
//! file. Before each call the file is checked (one `stat`); when its size,
//! modification time or inode changed, the new version is loaded and used
//! by the calls that start from then on. Calls already running keep an
//! `Arc` to the version they started with, which is unloaded when the last
//! of them finishes. A new version that does not load (broken, wrong ABI,
//! still being written) leaves the previous one in use, with a warning.
//! The copies stay on disk until the run ends (an inode freed and reused
//! while the loader still knows the old library would fool it).
//!
//! A version runs in plugin-host processes ([`Mode::Isolated`], the
//! default: a reload starts hosts on the new copy, and the old version's
//! hosts end with its last call) or inside atf ([`Mode::InProcess`], opted
//! into per plugin; its manifest is still read in a host process first
//! when one can be started, so that a plugin crashing while it loads is
//! skipped rather than taking atf down).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use atf_sdk::abi::Manifest;

use super::library::{Library, OpenError};
use super::pool::{HostPool, read_manifest};
use super::process::HostCommand;

/// Where a plugin's calls run.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// In plugin-host processes started with this command.
    Isolated(HostCommand),
    /// In this process. With a command, the manifest is first read in a
    /// host process, to skip a plugin that crashes while loading.
    InProcess(Option<HostCommand>),
}

/// Warnings raised while the run goes on (a reload that failed), shared
/// by all plugin files of a host.
pub(crate) type Warnings = Arc<Mutex<Vec<String>>>;

/// Pushes a warning.
pub(crate) fn warn(warnings: &Warnings, message: String) {
    warnings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(message);
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    let meta = fs::metadata(path)?;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        },
    })
}

/// The private folder where a run keeps the copies it loads; removed when
/// the last plugin file and loaded library of the run are gone.
pub(crate) struct CopyDir {
    path: PathBuf,
    next: AtomicU64,
}

impl CopyDir {
    /// Creates a new folder, readable only by this user, under the
    /// system's temporary folder.
    pub(crate) fn create() -> io::Result<CopyDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let pid = std::process::id();
        loop {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("atf-plugins-{pid}-{seq}"));
            let mut builder = fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => {
                    return Ok(CopyDir {
                        path,
                        next: AtomicU64::new(0),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && seq < 10_000 => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", path.display()),
                    ));
                }
            }
        }
    }

    /// Copies `source` to a new unique name in the folder.
    fn copy_in(&self, source: &Path) -> io::Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = source
            .file_name()
            .map_or_else(|| "plugin".into(), |n| n.to_string_lossy());
        let target = self.path.join(format!("{n}-{name}"));
        fs::copy(source, &target)?;
        Ok(target)
    }
}

impl Drop for CopyDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The version in use and the stamp of the file last looked at.
struct Current {
    /// `None` when the file could not be read at the last look.
    stamp: Option<Stamp>,
    lib: Arc<LoadedCopy>,
}

/// One loaded version of a plugin: in this process or in host processes.
pub(crate) enum Engine {
    /// Loaded into atf.
    InProcess(Library),
    /// Served by plugin-host processes.
    Isolated(HostPool),
}

impl Engine {
    /// What the plugin says about itself.
    pub(crate) fn manifest(&self) -> &Manifest {
        match self {
            Engine::InProcess(lib) => lib.manifest(),
            Engine::Isolated(pool) => pool.manifest(),
        }
    }

    /// Whether this version has the keyword `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Engine::InProcess(lib) => lib.has(name),
            Engine::Isolated(pool) => pool.has(name),
        }
    }
}

/// A loaded version and the folder its copy lives in (dropped after it).
pub(crate) struct LoadedCopy {
    pub(crate) lib: Engine,
    _dir: Arc<CopyDir>,
}

/// A plugin file of a run, loaded, and reloaded when it changes.
pub(crate) struct PluginFile {
    source: PathBuf,
    mode: Mode,
    dir: Arc<CopyDir>,
    current: RwLock<Current>,
    reloading: Mutex<()>,
    live: Arc<AtomicUsize>,
    loads: AtomicU64,
    warnings: Warnings,
}

impl PluginFile {
    /// Loads the file at `source` for the first time.
    pub(crate) fn open(
        source: PathBuf,
        dir: Arc<CopyDir>,
        warnings: Warnings,
        mode: Mode,
    ) -> Result<PluginFile, OpenError> {
        let live = Arc::new(AtomicUsize::new(0));
        let mut attempts = 0;
        let (stamp, lib) = loop {
            let before = stamp(&source)
                .map_err(|e| OpenError::NotALibrary(format!("cannot read it: {e}")))?;
            match load_version(&source, before, &dir, &live, &mode) {
                Ok(lib) => break (before, lib),
                Err(Reload::Failed(e)) => return Err(e),
                Err(Reload::Changing) if attempts < 5 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(Reload::Changing) => {
                    return Err(OpenError::NotALibrary(
                        "it kept changing while being read".into(),
                    ));
                }
            }
        };
        Ok(PluginFile {
            source,
            mode,
            dir,
            current: RwLock::new(Current {
                stamp: Some(stamp),
                lib,
            }),
            reloading: Mutex::new(()),
            live,
            loads: AtomicU64::new(1),
            warnings,
        })
    }

    /// The plugin file's path, as found in its folder.
    pub(crate) fn source(&self) -> &Path {
        &self.source
    }

    /// Whether its calls run in plugin-host processes.
    pub(crate) fn isolated(&self) -> bool {
        matches!(self.mode, Mode::Isolated(_))
    }

    /// How many versions of the file were loaded so far.
    pub(crate) fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }

    /// How many loaded versions are still in memory (the current one plus
    /// older ones that calls still run in).
    pub(crate) fn live_versions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The version in use, without looking at the file.
    pub(crate) fn loaded(&self) -> Arc<LoadedCopy> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .lib
            .clone()
    }

    /// The version a call starting now must use: the current one, or a new
    /// one when the file changed since the last look.
    pub(crate) fn for_call(&self) -> Arc<LoadedCopy> {
        let now = stamp(&self.source).ok();
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.stamp == now {
                return current.lib.clone();
            }
        }
        self.reload(now)
    }

    /// Loads the version of the file with stamp `now` (one thread at a
    /// time; the others wait, so that they too start on the new version).
    fn reload(&self, now: Option<Stamp>) -> Arc<LoadedCopy> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (seen, old) = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            (current.stamp, current.lib.clone())
        };
        // Another thread may have handled this change while we waited, or
        // the file may have changed again: look once more.
        let now = now.and_then(|_| stamp(&self.source).ok());
        if seen == now {
            return old;
        }
        let Some(now) = now else {
            self.set_stamp(None);
            warn(
                &self.warnings,
                format!(
                    "plugin file {} cannot be read any more; its loaded version stays in use",
                    self.source.display()
                ),
            );
            return old;
        };
        match load_version(&self.source, now, &self.dir, &self.live, &self.mode) {
            Ok(lib) => {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                *current = Current {
                    stamp: Some(now),
                    lib: lib.clone(),
                };
                self.loads.fetch_add(1, Ordering::SeqCst);
                lib
            }
            // Still being written: try again at the next call, quietly.
            Err(Reload::Changing) => old,
            Err(Reload::Failed(e)) => {
                self.set_stamp(Some(now));
                warn(
                    &self.warnings,
                    format!(
                        "plugin file {} changed, but the new version cannot be used: {e}; the previous version stays in use",
                        self.source.display()
                    ),
                );
                old
            }
        }
    }

    fn set_stamp(&self, stamp: Option<Stamp>) {
        self.current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp = stamp;
    }
}

/// Why a version was not loaded.
enum Reload {
    /// The file changed while it was copied: it may be half written.
    Changing,
    /// The file is not a usable plugin.
    Failed(OpenError),
}

/// Copies the file, whose stamp was `before`, and loads the copy.
fn load_version(
    source: &Path,
    before: Stamp,
    dir: &Arc<CopyDir>,
    live: &Arc<AtomicUsize>,
    mode: &Mode,
) -> Result<Arc<LoadedCopy>, Reload> {
    let copy = dir
        .copy_in(source)
        .map_err(|e| Reload::Failed(OpenError::NotALibrary(format!("cannot copy it: {e}"))))?;
    // Loading a half-written library could crash the process: when the
    // file changed while it was copied, wait for it to settle.
    let copied_len = fs::metadata(&copy).map(|m| m.len()).ok();
    if stamp(source).ok() != Some(before) || copied_len != Some(before.len) {
        let _ = fs::remove_file(&copy);
        return Err(Reload::Changing);
    }
    let engine = match mode {
        Mode::Isolated(command) => {
            HostPool::open(command, &copy, source, live.clone()).map(Engine::Isolated)
        }
        Mode::InProcess(probe) => {
            // A plugin that crashes while loading takes a host process
            // down, not atf.
            if let Some(command) = probe {
                read_manifest(command, &copy).map_err(Reload::Failed)?;
            }
            Library::open(&copy, live.clone()).map(Engine::InProcess)
        }
    };
    match engine {
        Ok(lib) => Ok(Arc::new(LoadedCopy {
            lib,
            _dir: dir.clone(),
        })),
        Err(e) => Err(Reload::Failed(e)),
    }
}
