//! Who may use a server that has a token.
//!
//! Without a token (a loopback address, the default) everything is open
//! and nothing here applies. With one:
//!
//! - an API client sends `Authorization: Bearer TOKEN`: not an ambient
//!   credential, so no CSRF check;
//! - a browser logs in at `/login` with the token and gets a session
//!   cookie (`atf_session`: a random id, `HttpOnly; SameSite=Strict;
//!   Path=/`, plus `Secure` behind `X-Forwarded-Proto: https`); `POST
//!   /logout` ends it. A page without a session redirects to
//!   `/login?next=…`, an API call answers 401;
//! - a state-changing request (POST, PUT, PATCH, DELETE) with the cookie
//!   must carry `X-CSRF-Token` equal to its session's CSRF token (each page
//!   has it in `<meta name="csrf-token">`), and a present `Origin` (else
//!   `Referer`) must name this server's `Host`: otherwise 403 with a JSON
//!   error saying which.
//!
//! Secrets are compared as SHA-256 digests (no early exit on a common
//! prefix), and sessions are kept by the digest of their id: the id
//! itself is only ever in the cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::App;
use crate::ui::esc;

type S = State<Arc<App>>;

/// The session cookie's name.
pub const COOKIE: &str = "atf_session";
/// The header a state-changing request with the cookie carries.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused for this long ends.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions; the least recently used goes first.
const MAX_SESSIONS: usize = 10_000;

tokio::task_local! {
    /// The CSRF token of the request's session, for the page it renders.
    pub static CSRF: Option<String>;
}

/// The CSRF token of the current request's session, if it has one.
pub fn csrf_token() -> Option<String> {
    CSRF.try_with(Clone::clone).ok().flatten()
}

struct Session {
    csrf: String,
    last: Instant,
}

/// The logged-in browsers, by the SHA-256 of their session id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether `given` is the secret `expected`, compared as digests.
pub fn same_secret(given: &str, expected: &str) -> bool {
    digest(given) == digest(expected)
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session: its id (for the cookie only).
    fn create(&self) -> String {
        let id = random_id();
        let mut map = self.lock();
        map.retain(|_, s| s.last.elapsed() < IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            digest(&id),
            Session {
                csrf: random_id(),
                last: Instant::now(),
            },
        );
        id
    }

    /// The CSRF token of live session `id`.
    fn touch(&self, id: &str) -> Option<String> {
        let mut map = self.lock();
        let key = digest(id);
        let s = map.get_mut(&key)?;
        if s.last.elapsed() >= IDLE {
            map.remove(&key);
            return None;
        }
        s.last = Instant::now();
        Some(s.csrf.clone())
    }

    fn end(&self, id: &str) {
        self.lock().remove(&digest(id));
    }
}

/// The session id in the request's cookies.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a present `Origin` (else `Referer`) names the request's
/// `Host`: `Err` says what did not.
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (what, value) = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(o), _) => ("Origin", o.to_str().unwrap_or("?")),
        (None, Some(r)) => ("Referer", r.to_str().unwrap_or("?")),
        (None, None) => return Ok(()),
    };
    let authority = value
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(format!(
            "cross-site request refused: its {what} is not this server ({host})"
        ))
    }
}

fn forbidden(why: String) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response()
}

fn state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Paths open without a token: the health check, the login page and the
/// static assets.
fn public(path: &str) -> bool {
    path == "/api/health" || path == "/login" || path.starts_with("/assets/")
}

/// The middleware: see the module's documentation.
pub async fn require_auth(State(app): S, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    if public(&path) {
        if req.method() == Method::POST
            && let Err(why) = same_origin(req.headers())
        {
            return forbidden(why);
        }
        return CSRF.scope(None, next.run(req)).await;
    }
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let given = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return if given.is_some_and(|g| same_secret(g, token)) {
            CSRF.scope(None, next.run(req)).await
        } else {
            unauthorized()
        };
    }
    let csrf = session_id(req.headers()).and_then(|id| app.sessions.touch(&id));
    let Some(csrf) = csrf else {
        if path.starts_with("/api/") {
            return unauthorized();
        }
        let mut next_url = path.clone();
        if let Some(q) = req.uri().query() {
            next_url.push('?');
            next_url.push_str(q);
        }
        // Slashes kept: `next=/runs%3Fpage%3D2` reads better.
        let to = format!(
            "/login?next={}",
            crate::ui::url_encode(&next_url).replace("%2F", "/")
        );
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    };
    if state_changing(req.method()) {
        if let Err(why) = same_origin(req.headers()) {
            return forbidden(why);
        }
        // The logout form carries its token in the body (checked there).
        if path != "/logout" {
            let given = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if given.is_empty() {
                return forbidden(format!(
                    "missing {CSRF_HEADER}: a request made with the session cookie must send the page's CSRF token"
                ));
            }
            if !same_secret(given, &csrf) {
                return forbidden(format!("wrong {CSRF_HEADER}: reload the page"));
            }
        }
    }
    CSRF.scope(Some(csrf), next.run(req)).await
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({
            "error": "this server needs `Authorization: Bearer TOKEN` (or log in at /login)"
        })),
    )
        .into_response()
}

/// Where to go after logging in: a path on this server only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

/// The login and logout routes.
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn login_html(next: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Log in</h1>{err}<form method=\"post\" action=\"/login\" id=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus required></label> \
         <button type=\"submit\">Log in</button></form>\
         <p><small>The server's token: <code>ATF_SERVE_TOKEN</code>, or the first line of <code>.atf/token</code> in the project.</small></p>",
        esc(next)
    );
    crate::ui::page_html("Log in", &body)
}

async fn login_page(State(app): S, Query(q): Query<NextQuery>) -> Response {
    if app.token.is_none() {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    }
    axum::response::Html(login_html(&safe_next(q.next.as_deref()), None)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(app): S, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(token) = &app.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    };
    if !same_secret(f.token.trim(), token) {
        eprintln!("login refused: wrong token");
        // Slows guessing down; a real user hardly notices.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return (
            StatusCode::UNAUTHORIZED,
            axum::response::Html(login_html(&next, Some("Wrong token."))),
        )
            .into_response();
    }
    let id = app.sessions.create();
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn logout(State(app): S, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(id) = session_id(&headers) {
        // The form's token, else the header's: a cross-site form cannot
        // log anyone out.
        let given = f
            .csrf
            .or_else(|| {
                headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        match app.sessions.touch(&id) {
            Some(csrf) if same_secret(&given, &csrf) => app.sessions.end(&id),
            Some(_) => return forbidden("missing or wrong CSRF token: reload the page".into()),
            None => {}
        }
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear),
            (header::LOCATION, "/login".into()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/runs?page=2")), "/runs?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn origin_must_name_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:7878".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:7878".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(same_origin(&h).unwrap_err().contains("Origin"));
        h.remove(header::ORIGIN);
        h.insert(header::REFERER, "http://evil.example/x".parse().unwrap());
        assert!(same_origin(&h).unwrap_err().contains("Referer"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; atf_session=abc; b=2".parse().unwrap());
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
    }
}
