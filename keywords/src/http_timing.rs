//! The phases of one HTTP request, as curl's `-w` timings and Hurl's
//! `--json` report them: name resolution, TCP connect, TLS handshake, the
//! time to the response headers and the total.
//!
//! reqwest does not report them, so three hooks see them happen while the
//! request's future is polled, and write them into a task-local record
//! that [`measure`] sets around one `send`:
//!
//! - a DNS resolver ([`TimedResolver`], given to `ClientBuilder::dns_resolver`)
//!   times the lookup (it resolves as reqwest's default does, with
//!   `getaddrinfo` on a blocking thread);
//! - a connector layer ([`TimedConnect`], `ClientBuilder::connector_layer`)
//!   sees the start and the end of opening a connection (resolution, TCP
//!   and TLS together);
//! - the TLS session store of the rustls configuration ([`TimedSessions`])
//!   is asked for a resumption ticket as the handshake begins, which is when
//!   TCP is connected.
//!
//! A request sent on a kept-alive connection opens none: its `dns_ms`,
//! `connect_ms` and `tls_ms` are 0, as curl reports them. The cost per
//! request is one task-local scope and a few clock reads; a new connection
//! adds one boxed future.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// When the phases of the current request happened (unset: did not happen).
#[derive(Default)]
pub(crate) struct Phases {
    dns: Cell<Option<Duration>>,
    connect_start: Cell<Option<Instant>>,
    tls_start: Cell<Option<Instant>>,
    connect_end: Cell<Option<Instant>>,
}

tokio::task_local! {
    static PHASES: Phases;
}

/// The measured phases of one request, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Timings {
    pub dns_ms: f64,
    pub connect_ms: f64,
    pub tls_ms: f64,
}

fn ms(d: Duration) -> f64 {
    // Microsecond precision is what curl prints; more is noise.
    (d.as_micros() as f64) / 1000.0
}

impl Phases {
    fn timings(&self) -> Timings {
        let dns = self.dns.get().unwrap_or_default();
        let (Some(start), Some(end)) = (self.connect_start.get(), self.connect_end.get()) else {
            // No connection was opened for this request (or none finished
            // while it waited): one was reused.
            return Timings::default();
        };
        let tcp_end = self.tls_start.get().filter(|t| *t >= start && *t <= end);
        let tcp = tcp_end.unwrap_or(end).saturating_duration_since(start);
        let tls = tcp_end.map(|t| end.saturating_duration_since(t));
        Timings {
            dns_ms: ms(dns),
            connect_ms: ms(tcp.saturating_sub(dns)),
            tls_ms: tls.map(ms).unwrap_or(0.0),
        }
    }
}

/// Runs `fut` (one `send`) and reports the connection phases it went through.
pub(crate) async fn measure<F: Future>(fut: F) -> (F::Output, Timings) {
    PHASES
        .scope(Phases::default(), async move {
            let out = fut.await;
            let timings = PHASES.with(Phases::timings);
            (out, timings)
        })
        .await
}

/// Resolves names as reqwest's default resolver does (`getaddrinfo` on a
/// blocking thread) and times the lookup.
pub(crate) struct TimedResolver;

impl reqwest::dns::Resolve for TimedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let started = Instant::now();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let took = started.elapsed();
            let _ = PHASES.try_with(|p| p.dns.set(Some(took)));
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// A tower layer around reqwest's connector that notes when opening a
/// connection began and ended.
#[derive(Clone, Copy)]
pub(crate) struct TimedConnect;

impl<S> tower_layer::Layer<S> for TimedConnect {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed(inner)
    }
}

/// The service of [`TimedConnect`].
#[derive(Clone)]
pub(crate) struct Timed<S>(S);

impl<S, R> tower_service::Service<R> for Timed<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let started = Instant::now();
        let connecting = self.0.call(req);
        Box::pin(async move {
            let out = connecting.await;
            let ended = Instant::now();
            let _ = PHASES.try_with(|p| {
                p.connect_start.set(Some(started));
                p.connect_end.set(Some(ended));
            });
            out
        })
    }
}

/// rustls's in-memory session cache, noting when a handshake asks it for a
/// ticket: the moment the handshake begins.
#[derive(Debug)]
pub(crate) struct TimedSessions(Arc<dyn ClientSessionStore>);

impl TimedSessions {
    pub(crate) fn new() -> TimedSessions {
        TimedSessions(Arc::new(rustls::client::ClientSessionMemoryCache::new(256)))
    }
}

fn tls_begins() {
    let _ = PHASES.try_with(|p| {
        if p.tls_start.get().is_none() {
            p.tls_start.set(Some(Instant::now()));
        }
    });
}

impl ClientSessionStore for TimedSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.0.set_kx_hint(server_name, group)
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        tls_begins();
        self.0.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.0.set_tls12_session(server_name, value)
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        tls_begins();
        self.0.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.0.remove_tls12_session(server_name)
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(server_name, value)
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        tls_begins();
        self.0.take_tls13_ticket(server_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_split_into_dns_tcp_and_tls() {
        let t0 = Instant::now();
        let p = Phases::default();
        p.dns.set(Some(Duration::from_millis(2)));
        p.connect_start.set(Some(t0));
        p.tls_start.set(Some(t0 + Duration::from_millis(5)));
        p.connect_end.set(Some(t0 + Duration::from_millis(12)));
        assert_eq!(
            p.timings(),
            Timings {
                dns_ms: 2.0,
                connect_ms: 3.0,
                tls_ms: 7.0
            }
        );
        // Plain HTTP: no handshake.
        p.tls_start.set(None);
        assert_eq!(p.timings().tls_ms, 0.0);
        assert_eq!(p.timings().connect_ms, 10.0);
        // A reused connection: nothing was opened.
        assert_eq!(Phases::default().timings(), Timings::default());
    }
}
