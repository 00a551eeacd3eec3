//! The console's HTTP side (axum): the pages, the live stream as
//! server-sent events (one `state` event a second carrying every panel),
//! the actions, `/metrics`, and the headers every response carries (a
//! strict Content-Security-Policy: the console's own script and style
//! sheet, nothing inline, nothing from elsewhere).
//!
//! It must never echo a ticket: the login form's field goes straight into
//! a [`View`] and is dropped from here.

use super::access::{self, Sessions};
use super::action::{self, Action};
use super::hive::{Requests, View};
use super::page::{self, Panels};
use super::{ConsoleConfig, metrics};
use crate::session::Target;
use crate::ticket::Presented;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// The console's state shared by its handlers.
#[derive(Debug)]
pub struct App {
    target: Target,
    timeout: Duration,
    sessions: Sessions,
    scrape_ticket_file: Option<PathBuf>,
    scrape: tokio::sync::Mutex<Option<Arc<View>>>,
    requests: Requests,
    stop: watch::Receiver<bool>,
}

impl App {
    /// The console of `config`; its live streams end when `stop` turns true.
    pub fn new(config: &ConsoleConfig, stop: watch::Receiver<bool>) -> Self {
        App {
            target: config.target.clone(),
            timeout: config.timeout,
            sessions: Sessions::default(),
            scrape_ticket_file: config.scrape_ticket_file.clone(),
            scrape: tokio::sync::Mutex::new(None),
            requests: Requests::default(),
            stop,
        }
    }

    /// Logs everyone out and drops the scrape view (their hive
    /// connections close, the heartbeat workers the console ran stop).
    pub fn close(&self) {
        self.sessions.clear();
        if let Ok(mut s) = self.scrape.try_lock() {
            *s = None;
        }
    }
}

/// The console's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/events", get(events))
        .route("/action", post(act))
        .route("/metrics", get(scrape))
        .route(
            "/app.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { ([(CONTENT_TYPE, "text/css")], STYLE_CSS) }),
        )
        .layer(axum::middleware::map_response(headers))
        .with_state(app)
}

async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let hive = app.target.to_string();
    match app.sessions.get(&headers) {
        Some(op) => Html(page::console(&hive, &op.csrf, &op.view.latest())).into_response(),
        None => Html(page::login(&hive, None)).into_response(),
    }
}

#[derive(Deserialize)]
struct Login {
    ticket: String,
}

fn login_refused(app: &App, status: StatusCode, why: &str) -> Response {
    (
        status,
        Html(page::login(&app.target.to_string(), Some(why))),
    )
        .into_response()
}

async fn login(State(app): State<Arc<App>>, form: Result<Form<Login>, FormRejection>) -> Response {
    let Ok(Form(Login { ticket })) = form else {
        return login_refused(
            &app,
            StatusCode::BAD_REQUEST,
            "the login form was malformed",
        );
    };
    let ticket = Presented {
        text: ticket.trim().to_owned(),
        from: "the login form".to_owned(),
    };
    if ticket.text.is_empty() {
        return login_refused(&app, StatusCode::UNAUTHORIZED, "no ticket given");
    }
    let view = View::open(
        app.target.clone(),
        app.timeout,
        ticket,
        None,
        app.requests.clone(),
    )
    .await;
    let view = match view {
        Ok(v) => v,
        Err(f) => {
            let why = format!("login refused: {}", f.message);
            return login_refused(&app, StatusCode::UNAUTHORIZED, &why);
        }
    };
    match app.sessions.add(view) {
        Ok((id, _)) => (
            StatusCode::SEE_OTHER,
            [
                (SET_COOKIE, access::set_cookie(&id)),
                (LOCATION, "/".to_owned()),
            ],
        )
            .into_response(),
        Err(e) => login_refused(
            &app,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("no random numbers for a session: {e}"),
        ),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.sessions.remove(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, access::clear_cookie()),
            (LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

fn refused(status: StatusCode, why: &str) -> Response {
    let body = action::Outcome {
        path: String::new(),
        sent: String::new(),
        ok: false,
        answer: why.to_owned(),
    };
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response()
}

async fn events(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(op) = app.sessions.get(&headers) else {
        return refused(StatusCode::UNAUTHORIZED, "not logged in");
    };
    let rx = op.view.watch();
    drop(op);
    let stream = futures_util::stream::unfold(
        (rx, app.stop.clone(), true),
        |(mut rx, mut stop, first)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    _ = stop.wait_for(|s| *s) => return None,
                }
            }
            let snap = rx.borrow_and_update().clone();
            let data = serde_json::to_string(&Panels::of(&snap)).unwrap_or_default();
            let event = Event::default().event("state").data(data);
            Some((Ok::<_, Infallible>(event), (rx, stop, false)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn act(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Action>, FormRejection>,
) -> Response {
    let Some(op) = app.sessions.get(&headers) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "not logged in (or the session ended): log in again",
        );
    };
    if !access::csrf_ok(&op, &headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "refused: the request carries no valid CSRF token (reload the page)",
        );
    }
    let action = match form {
        Ok(Form(a)) => a,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &format!("not an action: {e}")),
    };
    let outcome = action::run(&op.view, action).await;
    // The page shows the change at once rather than at the next poll.
    op.view.refresh().await;
    (
        [(CONTENT_TYPE, "application/json")],
        serde_json::to_string(&outcome).unwrap_or_default(),
    )
        .into_response()
}

/// Whether a scraper asked for OpenMetrics (Prometheus does); others get
/// the classic text format.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"))
}

async fn scrape(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let view = match &app.scrape_ticket_file {
        Some(path) => {
            let mut slot = app.scrape.lock().await;
            if slot.is_none()
                && let Ok(text) = ninedoor::host::read_ticket(path)
            {
                let ticket = Presented {
                    text,
                    from: path.display().to_string(),
                };
                *slot = View::open(
                    app.target.clone(),
                    app.timeout,
                    ticket,
                    Some(path.clone()),
                    app.requests.clone(),
                )
                .await
                .ok();
            }
            slot.clone()
        }
        None => app.sessions.latest_view(),
    };
    let snap = view.map(|v| v.latest());
    let text = metrics::encode(snap.as_deref(), &app.requests);
    if wants_openmetrics(&headers) {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(CONTENT_TYPE, kind)], text).into_response()
    } else {
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        ([(CONTENT_TYPE, kind)], metrics::classic(&text)).into_response()
    }
}
