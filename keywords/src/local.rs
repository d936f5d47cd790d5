//! A thread's own runtime, for threads that send requests back to back
//! (the virtual users of `atf load`).
//!
//! By default a keyword runs its future as a task of the run's shared
//! runtime ([`crate::run_on`]): the calling thread parks until a runtime
//! worker has finished it, which costs two thread wake-ups per step. A
//! thread inside [`with_own_runtime`] has a current-thread runtime of its
//! own instead, and the keywords that support it (`http.request`) poll
//! their futures right there, with clients (and their kept-alive
//! connections) of that thread: no hand-off at all. Such a thread is one
//! virtual user with its own connections, as in k6 or wrk.

use std::cell::{Cell, RefCell};
use std::future::Future;

thread_local! {
    static OWN: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    static ON_EXIT: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
    static NESTED: Cell<bool> = const { Cell::new(false) };
}

/// Clears the thread's runtime when [`with_own_runtime`] returns or unwinds.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        // What was cached for this runtime (clients, their connections) goes first.
        let hooks = ON_EXIT.with(|h| std::mem::take(&mut *h.borrow_mut()));
        for hook in hooks {
            hook();
        }
        let rt = OWN.with(|o| o.borrow_mut().take());
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` with a current-thread runtime of this thread's own (see the
/// module). When the runtime cannot be built (the process is out of file
/// descriptors, say), `f` runs without one and keywords use the shared
/// runtime as elsewhere.
pub fn with_own_runtime<R>(f: impl FnOnce() -> R) -> R {
    if active() {
        return f();
    }
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(rt) = built else {
        return f();
    };
    OWN.with(|o| *o.borrow_mut() = Some(rt));
    let _reset = Reset;
    f()
}

/// Whether this thread has its own runtime to poll futures on.
pub fn active() -> bool {
    !NESTED.with(Cell::get) && OWN.with(|o| o.borrow().is_some())
}

/// Runs `fut` to completion on this thread's own runtime; gives it back
/// when the thread has none (or is already inside it).
pub(crate) fn block_on_own<F: Future>(fut: F) -> Result<F::Output, F> {
    if NESTED.with(Cell::get) {
        return Err(fut);
    }
    OWN.with(|o| {
        let own = o.borrow();
        let Some(rt) = own.as_ref() else {
            return Err(fut);
        };
        NESTED.with(|n| n.set(true));
        struct Unnest;
        impl Drop for Unnest {
            fn drop(&mut self) {
                NESTED.with(|n| n.set(false));
            }
        }
        let _unnest = Unnest;
        Ok(rt.block_on(fut))
    })
}

/// Runs `hook` when this thread's own runtime ends (before it is dropped):
/// for caches of things bound to it.
pub(crate) fn on_exit(hook: impl FnOnce() + 'static) {
    ON_EXIT.with(|h| h.borrow_mut().push(Box::new(hook)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_run_on_the_threads_own_runtime_only_inside() {
        assert!(!active());
        assert!(block_on_own(async { 1 }).is_err());
        let ran_hook = std::rc::Rc::new(Cell::new(false));
        let seen = ran_hook.clone();
        let got = with_own_runtime(|| {
            assert!(active());
            on_exit(move || seen.set(true));
            // Timers and I/O work: the runtime has both drivers.
            block_on_own(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.is_ok();
                (l, active())
            })
            .ok()
        });
        // Inside a future the thread counts as busy: no nested block_on.
        assert_eq!(got, Some((true, false)));
        assert!(ran_hook.get());
        assert!(!active());
    }

    #[test]
    fn the_runtime_is_cleared_when_the_body_panics() {
        let r = std::panic::catch_unwind(|| with_own_runtime(|| panic!("boom")));
        assert!(r.is_err());
        assert!(!active());
    }
}
