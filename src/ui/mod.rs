//! `sweep ui`: a read-only web dashboard over the tracker and the runs directory.
//!
//! The pages (the sweeps, a sweep, a trial, a comparison) are rendered on the server by
//! `report::html`, charts drawn as SVG by the same plotters code that writes the PNG charts, so
//! the page needs no CDN and works offline; a few lines of script on each page poll a small JSON
//! state route and swap in what changed. Every route is a GET (any other method is refused with
//! 405): nothing here writes the tracker. Files are served only from under the runs directory
//! ([`pages::contained`]). The HTTP stack is axum on tokio; the tracker's calls are blocking, so
//! each request runs its page function on tokio's blocking threads, one tracker connection at a
//! time (SQLite in WAL mode: this reader never blocks the workers that write).
//!
//! ```
//! use sweep::ui::Dashboard;
//! let dir = tempfile::tempdir().unwrap();
//! let store = sweep::store::open(&dir.path().join("sweep.db").display().to_string(), true).unwrap();
//! let dashboard = Dashboard::new(store, dir.path());
//! let page = dashboard.index();
//! assert_eq!(page.status, 200);
//! assert!(String::from_utf8(page.body).unwrap().contains("sweep"));
//! assert_eq!(dashboard.trial("nope-1").status, 404);
//! ```
//!
//! Every request's `Host` must be an IP address, `localhost` or a name given with `--allow-host`
//! ([`host_allowed`]): a page on another site whose name is made to resolve to this machine (DNS
//! rebinding) sends its own name, and is refused before it can read the tracker.

pub mod pages;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::report::html::{CurveView, Route};
use crate::store::Intervention;
use crate::train::predict::Grid as PredictionGrid;

pub use pages::{Dashboard, Posted, Reply};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("--host {host}: not an address to listen on; use an IP address such as 127.0.0.1 (the default) or 0.0.0.0")]
    BadHost { host: String },
    #[error("port {port} on {host} is already in use (another `sweep ui`?); choose another with --port, e.g. --port {}", .port.wrapping_add(1).max(1024))]
    PortInUse { host: String, port: u16 },
    #[error("cannot listen on {host} port {port}: {source}; choose another --host or --port")]
    Bind {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the web server failed: {0}")]
    Server(#[source] std::io::Error),
}

impl UiError {
    /// Whether a flag was wrong (exit 2): an address that cannot be used or a port in use.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, UiError::Server(_))
    }
}

/// Whether listening on `addr` exposes the dashboard beyond this machine.
pub fn is_exposed(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Whether a request's `Host` header names this dashboard: an IP address (no name to rebind),
/// `localhost` or a name under it, or one of `allowed` (`--allow-host`); any port, any case, a
/// trailing dot ignored.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || tail.strip_prefix(':').is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())) => ip,
            _ => return false,
        },
        None => host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// Serves `dashboard` on `host:port` until Ctrl-C or SIGTERM, answering requests whose `Host`
/// [`host_allowed`] takes; `ready` is told the address once the port is bound (port 0 picks a
/// free one).
pub fn serve(dashboard: Dashboard, host: &str, port: u16, allowed_hosts: Vec<String>, ready: impl FnOnce(SocketAddr)) -> Result<(), UiError> {
    let addr = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| UiError::BadHost { host: host.to_string() })?;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => UiError::PortInUse { host: host.to_string(), port },
        _ => UiError::Bind { host: host.to_string(), port, source },
    })?;
    listener.set_nonblocking(true).map_err(UiError::Server)?;
    ready(listener.local_addr().map_err(UiError::Server)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(UiError::Server)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(UiError::Server)?;
        let app = router(Arc::new(dashboard)).layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            // The Host it names, when that is not one of ours (no Host at all: HTTP/1.0, allowed).
            let refused = request
                .headers()
                .get(header::HOST)
                .filter(|h| h.to_str().map_or(true, |h| !host_allowed(h, &allowed_hosts)))
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
            async move {
                match refused {
                    Some(host) => into_response(Reply::forbidden(&format!(
                        "this dashboard does not answer to the name {host:?}: open it by IP address or localhost, or start it with \
                         `sweep ui --allow-host NAME` to serve under that name"
                    ))),
                    None => next.run(request).await,
                }
            }
        }));
        axum::serve(listener, app).with_graceful_shutdown(shutdown()).await.map_err(UiError::Server)
    })
}

/// Resolves at Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => drop(t.recv().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The routes ([`Route::ALL`], each with its handler): GET only (axum answers 405 to other
/// methods on them) but the actions, POST only; a 404 page elsewhere.
pub fn router(state: Arc<Dashboard>) -> Router {
    Route::ALL
        .into_iter()
        .fold(Router::new(), |router, route| router.route(route.pattern(), handler(route)))
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                into_response(Reply::json_error(404, "no such route; the JSON routes are /api/sweeps, /api/sweeps/NAME and /api/runs/ID"))
            } else {
                into_response(Reply::not_found("no such page"))
            }
        })
        .with_state(state)
}

/// What answers a route; the match is exhaustive, so a route without a handler does not build.
fn handler(route: Route) -> MethodRouter<Arc<Dashboard>> {
    match route {
        Route::Index => get(|State(d): State<Arc<Dashboard>>| answer(d, |d| d.index())),
        Route::Sweep => get(sweep),
        Route::Trial => get(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>| answer(d, move |d| d.trial(&id))),
        Route::Predictions => {
            get(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>| answer(d, move |d| d.grid(&id, PredictionGrid::Predictions)))
        }
        Route::Worst => get(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>| answer(d, move |d| d.grid(&id, PredictionGrid::Worst))),
        Route::Log => get(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>| answer(d, move |d| d.trial_log(&id))),
        Route::Tags => {
            post(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, Form(fields): Form<Vec<(String, String)>>| {
                act(d, Posted { same_origin: same_origin(&headers), fields }, move |d, posted| d.post_tags(&id, posted))
            })
        }
        Route::Note => {
            post(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, Form(fields): Form<Vec<(String, String)>>| {
                act(d, Posted { same_origin: same_origin(&headers), fields }, move |d, posted| d.post_note(&id, posted))
            })
        }
        Route::Stop => intervention(|_| Intervention::Stop),
        Route::Prune => intervention(|posted| Intervention::Prune { note: posted.field("note").unwrap_or("").to_string() }),
        Route::Resume => {
            post(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, Form(fields): Form<Vec<(String, String)>>| {
                act(d, Posted { same_origin: same_origin(&headers), fields }, move |d, posted| d.post_resume(&id, posted))
            })
        }
        Route::Compare => get(compare),
        Route::SweepsState => get(|State(d): State<Arc<Dashboard>>| answer(d, |d| d.sweeps_state())),
        Route::SweepState => get(|State(d): State<Arc<Dashboard>>, UrlPath(n): UrlPath<String>| answer(d, move |d| d.sweep_state(&n))),
        Route::SearchState => get(|State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>| answer(d, move |d| d.trial_state(&id))),
        Route::File => get(|State(d): State<Arc<Dashboard>>, UrlPath(p): UrlPath<String>| answer(d, move |d| d.file(&p))),
        Route::SweepImportance => {
            get(|State(d): State<Arc<Dashboard>>, UrlPath(name): UrlPath<String>, Query(query): Query<Vec<(String, String)>>| {
                let value = |key: &str| query.iter().rev().find(|(k, v)| k == key && !v.trim().is_empty()).map(|(_, v)| v.clone());
                let (filter, of) = (value("where"), value("of"));
                answer(d, move |d| d.sweep_importance(&name, filter.as_deref(), of.as_deref()))
            })
        }
    }
}

/// `POST /runs/ID/stop` or `/prune`: the intervention the form asks for.
fn intervention(of: fn(&Posted) -> Intervention) -> MethodRouter<Arc<Dashboard>> {
    post(move |State(d): State<Arc<Dashboard>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, Form(fields): Form<Vec<(String, String)>>| {
        act(d, Posted { same_origin: same_origin(&headers), fields }, move |d, posted| d.post_intervention(&id, posted, &of(posted)))
    })
}

async fn sweep(State(d): State<Arc<Dashboard>>, UrlPath(name): UrlPath<String>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let value = |key: &str| query.iter().rev().find(|(k, v)| k == key && !v.trim().is_empty()).map(|(_, v)| v.clone());
    let (sort, filter) = (value("sort"), value("where"));
    let view = match curve_view(&value) {
        Ok(view) => view,
        Err(message) => return into_response(Reply::bad_request(&message)),
    };
    let page = match value("page").map(|p| p.trim().parse::<usize>().ok().filter(|&p| p >= 1).ok_or(p)).transpose() {
        Ok(page) => page.unwrap_or(1),
        Err(p) => return into_response(Reply::bad_request(&format!("page={p}: expected the leaderboard's page number, from 1"))),
    };
    answer(d, move |d| d.sweep(&name, sort.as_deref(), filter.as_deref(), page, &view)).await
}

/// The learning curves' view from the sweep page's form: `log=on`, `smooth` in [0, 1), and a
/// zoom of `zoom`'s curves (loss, iou, dice, ...) from `ymin` to `ymax` (both or neither, ymin
/// below ymax, above 0 for a loss on a log scale).
fn curve_view(value: &dyn Fn(&str) -> Option<String>) -> Result<CurveView, String> {
    let number = |key: &str| -> Result<Option<f64>, String> {
        value(key).map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(format!("{key}={v}: expected a number"))).transpose()
    };
    let log = match value("log").as_deref() {
        None | Some("off" | "0" | "false") => false,
        Some("on" | "1" | "true") => true,
        Some(other) => return Err(format!("log={other}: expected on or off")),
    };
    let smooth = number("smooth")?.unwrap_or(0.0);
    if !(0.0..1.0).contains(&smooth) {
        return Err(format!("smooth={smooth}: expected a weight in [0, 1), e.g. 0.6 (0 is none)"));
    }
    let metric = value("zoom").unwrap_or_else(|| "loss".to_string());
    if !crate::config::METRIC_NAMES.contains(&metric.as_str()) && !crate::config::FULL_RESOLUTION_METRICS.contains(&metric.as_str()) {
        return Err(format!("zoom={metric}: expected one of the curves' metrics, {}", crate::config::METRIC_NAMES.join(", ")));
    }
    let logged = log && metric.ends_with("loss");
    let zoom = match (number("ymin")?, number("ymax")?) {
        (None, None) => None,
        (Some(lo), Some(hi)) if lo < hi && (!logged || lo > 0.0) => Some((metric, lo, hi)),
        (Some(lo), Some(hi)) if lo < hi => return Err(format!("ymin={lo}: a log scale starts above 0")),
        (Some(lo), Some(hi)) => return Err(format!("ymin={lo}, ymax={hi}: ymin must be below ymax")),
        _ => return Err("a zoom needs both ymin and ymax".to_string()),
    };
    Ok(CurveView { log, smooth, zoom })
}

/// `/compare?runs=a,b` or `?runs=a&runs=b` (the leaderboard's check boxes); an id named twice is
/// compared once.
async fn compare(State(d): State<Arc<Dashboard>>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "runs")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty() && seen.insert(*s))
        .map(String::from)
        .collect();
    answer(d, move |d| d.compare(&ids)).await
}

/// Whether a request comes from a page of this server: its `Origin` (or, without one, its
/// `Referer`) is `http://` or `https://` followed by the `Host` it was sent to. A request that
/// names neither is refused too: browsers send `Origin` with every POST.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(host) = text(header::HOST) else { return false };
    let origin = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => origin.to_string(),
        (None, Some(referer)) => referer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/"),
        (None, None) => return false,
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// Runs an action on a blocking thread: a refusal answers as it is, a done action sends the
/// browser on (303) to the page it names.
async fn act(d: Arc<Dashboard>, posted: Posted, action: impl FnOnce(&Dashboard, &Posted) -> Result<String, Reply> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(move || action(&d, &posted)).await {
        Ok(Ok(location)) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Ok(Err(reply)) => into_response(reply),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the action failed: {e}")).into_response(),
    }
}

/// Runs a page function on a blocking thread (the tracker's calls block) and answers with it.
async fn answer(d: Arc<Dashboard>, page: impl FnOnce(&Dashboard) -> Reply + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(move || page(&d)).await {
        Ok(reply) => into_response(reply),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the page failed: {e}")).into_response(),
    }
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn ip_addresses_localhost_and_allowed_names_are_hosts_of_ours_other_names_are_not() {
        let allowed = vec!["lab-box".to_string(), "ui.example.org".to_string()];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.1.2.3:80",
            "[::1]:8080",
            "[::1]",
            "localhost",
            "LocalHost:1",
            "a.localhost",
            "lab-box:8080",
            "UI.example.org.",
            "localhost.",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "lab-box.evil",
            "127.0.0.1.nip.io",
            "",
            "[::1",
            "lab-box:80:80",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
