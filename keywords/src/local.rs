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
//!
//! A thread may also host many virtual users ([`run_group`]): each runs
//! its synchronous body on a coroutine (a stack of its own, from
//! `corosensei`), and where a keyword waits ([`block_on_own`], [`sleep`],
//! [`crate::run_on`]) the coroutine is suspended instead of the thread.
//! The thread's one runtime then waits on the sockets of all its users in
//! one `epoll_wait`, as an event loop (wrk, k6) does, without a thread
//! wake-up per request. Only keywords that wait nowhere else may run
//! there: those whose [`atf_sdk::Keyword::cooperative`] says so.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use corosensei::stack::DefaultStack;
use corosensei::{CoroutineResult, ScopedCoroutine, ScopedCoroutineRef, Yielder};

thread_local! {
    static OWN: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    static ON_EXIT: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
    static NESTED: Cell<bool> = const { Cell::new(false) };
    /// The yielder of the coroutine running now on this thread; null
    /// outside one.
    static CURRENT: Cell<*const Yielder<*const Waker, ()>> = const { Cell::new(std::ptr::null()) };
    /// The waker of the task that resumed the running coroutine.
    static WAKER: Cell<*const Waker> = const { Cell::new(std::ptr::null()) };
}

/// Clears the thread's runtime when [`with_own_runtime`] returns or unwinds.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        release(OWN.with(|o| o.borrow_mut().take()));
    }
}

/// Ends a thread's own runtime: what was cached for it (clients, their
/// connections; see [`on_exit`]) goes first, then the runtime.
fn release(rt: Option<tokio::runtime::Runtime>) {
    let hooks = ON_EXIT.with(|h| std::mem::take(&mut *h.borrow_mut()));
    for hook in hooks {
        hook();
    }
    if let Some(rt) = rt {
        rt.shutdown_background();
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

/// Whether this thread has its own runtime to poll futures on (or runs
/// a virtual user's coroutine, which waits on its group's runtime).
pub fn active() -> bool {
    !NESTED.with(Cell::get)
        && (!CURRENT.with(Cell::get).is_null() || OWN.with(|o| o.borrow().is_some()))
}

/// Whether a coroutine of [`run_group`] runs now on this thread (and is
/// not inside a poll of a future already).
pub(crate) fn in_coroutine() -> bool {
    !NESTED.with(Cell::get) && !CURRENT.with(Cell::get).is_null()
}

/// Sleeps `d`: a coroutine of [`run_group`] is suspended meanwhile (the
/// other virtual users of its thread go on); any other thread sleeps.
pub fn sleep(d: Duration) {
    if in_coroutine() {
        suspend_on(tokio::time::sleep(d));
    } else {
        std::thread::sleep(d);
    }
}

/// Unsets [`NESTED`] when a poll returns or unwinds.
struct Unnest;

impl Drop for Unnest {
    fn drop(&mut self) {
        NESTED.with(|n| n.set(false));
    }
}

/// Polls `fut` on the running coroutine until it is ready, suspending the
/// coroutine each time it is pending (its waker resumes it).
fn suspend_on<F: Future>(fut: F) -> F::Output {
    let yielder = CURRENT.with(Cell::get);
    let mut fut = std::pin::pin!(fut);
    loop {
        let polled = {
            // SAFETY: WAKER is the waker of the task that resumed this
            // coroutine; that task's poll is on the stack below us until
            // we suspend.
            let waker = unsafe { &*WAKER.with(Cell::get) };
            NESTED.with(|n| n.set(true));
            let _unnest = Unnest;
            fut.as_mut().poll(&mut Context::from_waker(waker))
        };
        if let Poll::Ready(out) = polled {
            return out;
        }
        // SAFETY: CURRENT was set by this coroutine's body from the yielder
        // it was given, which lives as long as the coroutine runs.
        let waker = unsafe { (*yielder).suspend(()) };
        CURRENT.with(|c| c.set(yielder));
        WAKER.with(|w| w.set(waker));
    }
}

/// Runs `fut` to completion on this thread's own runtime (or suspends
/// this virtual user's coroutine until it is); gives it back when the
/// thread has none (or is already inside it).
pub fn block_on_own<F: Future>(fut: F) -> Result<F::Output, F> {
    if NESTED.with(Cell::get) {
        return Err(fut);
    }
    if !CURRENT.with(Cell::get).is_null() {
        return Ok(suspend_on(fut));
    }
    OWN.with(|o| {
        let own = o.borrow();
        let Some(rt) = own.as_ref() else {
            return Err(fut);
        };
        NESTED.with(|n| n.set(true));
        let _unnest = Unnest;
        Ok(rt.block_on(fut))
    })
}

/// News that steps wait for (a message arrived, a connection closed): a
/// thread waits for it on a condvar, a virtual user's coroutine on a
/// `Notify`, so that it does not hold the thread its group shares.
#[derive(Default)]
pub(crate) struct Signal {
    threads: std::sync::Condvar,
    users: tokio::sync::Notify,
}

impl Signal {
    /// Wakes every waiter; call after the news is in the locked state.
    pub(crate) fn notify(&self) {
        self.threads.notify_all();
        self.users.notify_waiters();
    }

    /// Lets `guard` of `lock` go and waits at most `slice` for
    /// [`Signal::notify`] (or a spurious wake-up), then locks again.
    pub(crate) fn wait<'g, T>(
        &self,
        lock: &'g std::sync::Mutex<T>,
        guard: std::sync::MutexGuard<'g, T>,
        slice: Duration,
    ) -> std::sync::LockResult<std::sync::MutexGuard<'g, T>> {
        if !in_coroutine() {
            return match self.threads.wait_timeout(guard, slice) {
                Ok((guard, _)) => Ok(guard),
                Err(e) => Err(std::sync::PoisonError::new(e.into_inner().0)),
            };
        }
        // Registered while the guard is held: news put in the state after
        // the caller read it is notified after this, and wakes it.
        let notified = self.users.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        drop(guard);
        let _ = suspend_on(tokio::time::timeout(slice, notified));
        lock.lock()
    }
}

/// Runs `hook` when this thread's own runtime ends (before it is dropped):
/// for caches of things bound to it.
pub(crate) fn on_exit(hook: impl FnOnce() + 'static) {
    ON_EXIT.with(|h| h.borrow_mut().push(Box::new(hook)));
}

/// The stack of a virtual user's coroutine: as much as a thread's (2 MiB,
/// Rust's default), reserved, not committed: only the pages it touches
/// take memory.
const STACK: usize = 2 << 20;

type Coroutine<'a> = ScopedCoroutine<'a, *const Waker, (), (), DefaultStack>;
type CoroutineRef<'r> = ScopedCoroutineRef<'r, *const Waker, (), (), DefaultStack>;

/// A coroutine as a task of the group's runtime.
struct Task<'r>(CoroutineRef<'r>);

impl Future for Task<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let resumed = this.0.as_mut().resume(cx.waker() as *const Waker);
        CURRENT.with(|c| c.set(std::ptr::null()));
        WAKER.with(|w| w.set(std::ptr::null()));
        match resumed {
            CoroutineResult::Yield(()) => Poll::Pending,
            CoroutineResult::Return(()) => Poll::Ready(()),
        }
    }
}

/// Enters the scope of each coroutine in turn (a [`ScopedCoroutine`] is
/// only used inside its scope), then drives them all.
fn enter_all<'a>(
    mut rest: Vec<Coroutine<'a>>,
    entered: Vec<CoroutineRef<'_>>,
    drive: &mut dyn FnMut(Vec<CoroutineRef<'_>>),
) {
    match rest.pop() {
        None => drive(entered),
        Some(co) => co.scope(move |r| {
            let mut entered: Vec<CoroutineRef<'_>> = entered;
            entered.push(r);
            enter_all(rest, entered, drive)
        }),
    }
}

/// Runs `bodies` as the virtual users of this thread: each on a coroutine
/// of its own, all on one current-thread runtime (see the module).
/// Returns when every body has returned; a body that panics ends alone.
/// When the runtime or a stack cannot be made, each body runs on a thread
/// of its own with [`with_own_runtime`] instead.
pub fn run_group<'a>(bodies: Vec<Box<dyn FnOnce() + Send + 'a>>) {
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let stacks: std::io::Result<Vec<DefaultStack>> =
        bodies.iter().map(|_| DefaultStack::new(STACK)).collect();
    let (Ok(rt), Ok(stacks)) = (built, stacks) else {
        std::thread::scope(|scope| {
            for body in bodies {
                scope.spawn(move || {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        with_own_runtime(body)
                    }));
                });
            }
        });
        return;
    };
    let coroutines: Vec<Coroutine<'a>> = bodies
        .into_iter()
        .zip(stacks)
        .map(|(body, stack)| {
            ScopedCoroutine::with_stack(stack, move |yielder: &Yielder<*const Waker, ()>, waker| {
                CURRENT.with(|c| c.set(yielder));
                WAKER.with(|w| w.set(waker));
                // The caller reports its own panics; none may cross the coroutine.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            })
        })
        .collect();
    struct End(Option<tokio::runtime::Runtime>);
    impl Drop for End {
        fn drop(&mut self) {
            release(self.0.take());
        }
    }
    let end = End(Some(rt));
    let Some(rt) = end.0.as_ref() else {
        return;
    };
    enter_all(coroutines, Vec::new(), &mut |entered| {
        use futures_util::StreamExt;
        let mut tasks: futures_util::stream::FuturesUnordered<Task<'_>> =
            entered.into_iter().map(Task).collect();
        rt.block_on(async { while tasks.next().await.is_some() {} });
    });
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

    #[test]
    fn the_users_of_a_group_take_turns_on_one_thread() {
        use std::sync::Mutex;
        // User 1 waits for what user 2 sends after a sleep: that can only
        // end if waiting suspends user 1 instead of blocking the thread.
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let rx = Mutex::new(Some(rx));
        let tx = Mutex::new(Some(tx));
        let threads = Mutex::new(Vec::new());
        let got = Mutex::new(None);
        let hooks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hooks_seen = hooks.clone();
        let (threads_ref, tx) = (&threads, tx);
        let bodies: Vec<Box<dyn FnOnce() + Send + '_>> = vec![
            Box::new(|| {
                assert!(active() && in_coroutine());
                threads.lock().unwrap().push(std::thread::current().id());
                let rx = rx.lock().unwrap().take().unwrap();
                // Bounded, so that a broken group fails instead of hanging.
                let waited = block_on_own(tokio::time::timeout(Duration::from_secs(10), rx));
                *got.lock().unwrap() = waited.ok().and_then(Result::ok).and_then(Result::ok);
            }),
            Box::new(move || {
                threads_ref
                    .lock()
                    .unwrap()
                    .push(std::thread::current().id());
                sleep(Duration::from_millis(5));
                let tx = tx.lock().unwrap().take().unwrap();
                let _ = tx.send(7);
                on_exit(move || {
                    hooks_seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }),
            // A user that panics ends alone.
            Box::new(|| panic!("boom")),
        ];
        run_group(bodies);
        assert_eq!(*got.lock().unwrap(), Some(7));
        let threads = threads.into_inner().unwrap();
        assert_eq!(threads.len(), 2);
        // Both on the calling thread, each on a stack of its own.
        assert!(threads.iter().all(|t| *t == std::thread::current().id()));
        // What was kept for the group's runtime was let go at its end.
        assert_eq!(hooks.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!active());
    }

    #[test]
    fn keywords_tasks_on_the_shared_runtime_suspend_a_user_too() {
        let shared = tokio::runtime::Runtime::new().unwrap();
        let handle = shared.handle().clone();
        let got = std::sync::Mutex::new(Vec::new());
        let bodies: Vec<Box<dyn FnOnce() + Send + '_>> = (0..3u32)
            .map(|i| {
                let handle = handle.clone();
                let got = &got;
                Box::new(move || {
                    let out = crate::run_on(&handle, async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Ok(i * 10)
                    });
                    got.lock().unwrap().push(out.ok());
                }) as Box<dyn FnOnce() + Send + '_>
            })
            .collect();
        run_group(bodies);
        let mut got = got.into_inner().unwrap();
        got.sort();
        assert_eq!(got, vec![Some(0), Some(10), Some(20)]);
    }
}
