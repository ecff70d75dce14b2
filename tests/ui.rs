//! `sweep ui` (issue 14): the real binary serving a tracker that a real tiny sweep filled, spoken
//! to over raw HTTP/1.1 on a loopback port (so paths reach it exactly as written: `..`,
//! `%2e%2e`), the traversal cases, 404 pages, 405 on other methods, refusals at start, a sweep
//! that runs while the pages are read, `sweep status --watch`, and headless Chromium seeing a new
//! epoch appear on the sweep page without a reload.

mod common;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sweep::store::{SqliteStore, Store as _};

/// A `sweep ui` process on a free loopback port, stopped (by its pid) when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `sweep --runs-dir RUNS ui --port 0 ARGS` and waits for the address it prints.
    fn start(runs: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(common::sweep_bin())
            .arg("--runs-dir")
            .arg(runs)
            .args(["ui", "--port", "0"])
            .args(args)
            .env_remove("SWEEP_STORE")
            .env_remove("SWEEP_RUNS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).map(String::from);
        let Some(addr) = addr else {
            let _ = child.kill();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("sweep ui did not start: {line:?} {err}");
        };
        Server { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `METHOD path` as written; the status and the body.
    fn request(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        self.request_as(&self.addr, method, path)
    }

    /// `METHOD path` with `Host: host`.
    fn request_as(&self, host: &str, method: &str, path: &str) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, raw[split + 4..].to_vec())
    }

    /// `POST path` with a form `body` and, when given, an `Origin`; the status, the `Location`
    /// header (if any) and the body.
    fn post(&self, path: &str, origin: Option<&str>, body: &str) -> (u16, Option<String>, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("a header");
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
        let location = head.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: "))).map(String::from);
        (status, location, body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (status, body) = self.request("GET", path);
        (status, String::from_utf8_lossy(&body).to_string())
    }

    /// The page at `path`, which must answer 200.
    fn page(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Stops the server and returns what it wrote to standard error.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny grid sweep `ui` of two trials (hue 0 and 0.3, 2 epochs), trained once for the tests
/// that only read it, in cargo's temporary directory for integration tests.
fn trained() -> &'static Path {
    static RUNS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-trained");
        let _ = std::fs::remove_dir_all(&runs);
        std::fs::create_dir_all(&runs).unwrap();
        let file = runs.join("ui.toml");
        std::fs::write(&file, common::tiny_sweep("ui", 2, &[0.0, 0.3])).unwrap();
        let out = common::sweep(&runs).arg("run").arg(&file).args(["--workers", "2", "--plain"]).output().unwrap();
        assert!(out.status.success(), "sweep run failed: {}", String::from_utf8_lossy(&out.stderr));
        runs
    })
}

/// A running `sweep run` of one tiny trial with many epochs on a larger synthetic set (a few
/// seconds each), stopped with Ctrl-C twice by its pid when dropped.
struct Running {
    child: Child,
}

impl Running {
    fn start(runs: &Path, name: &str, epochs: usize) -> Running {
        std::fs::create_dir_all(runs).unwrap();
        let file = runs.join(format!("{name}.toml"));
        let text = common::tiny_sweep(name, epochs, &[0.1]).replace("synthetic_count = 24", "synthetic_count = 160");
        std::fs::write(&file, text).unwrap();
        Running::again(runs, name)
    }

    /// `sweep run` of the sweep file `start` wrote, again.
    fn again(runs: &Path, name: &str) -> Running {
        let file = runs.join(format!("{name}.toml"));
        let child = Command::new(common::sweep_bin())
            .arg("--runs-dir")
            .arg(runs)
            .args(["run", file.to_str().unwrap(), "--plain", "--workers", "1"])
            .env_remove("SWEEP_STORE")
            .env_remove("SWEEP_RUNS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running { child }
    }

    /// Waits until trial `<name>-1` has recorded an epoch, as the tracker says.
    fn wait_for_an_epoch(runs: &Path, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let out = common::sweep(runs).args(["show", &format!("{name}-1"), "--json"]).output().unwrap();
            if out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| !v["epochs"].as_array().is_none_or(|e| e.is_empty()))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("no epoch of {name}-1 recorded within 120 s");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        for _ in 0..2 {
            // SAFETY: signals the sweep this test started, by its pid.
            unsafe { libc::kill(pid, libc::SIGINT) };
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.wait();
    }
}

#[test]
fn the_pages_show_the_sweeps_a_sweep_a_trial_and_a_comparison() {
    let server = Server::start(trained(), &[]);
    let index = server.page("/");
    assert!(index.contains("<a href=\"/sweeps/ui\">ui</a>") && index.contains("grid") && index.contains("none"), "{index}");
    assert!(index.contains("best so far") && index.contains("val_iou = "), "{index}");

    let sweep = server.page("/sweeps/ui");
    for part in [
        "Leaderboard",
        "href=\"/runs/ui-1\"",
        "href=\"/runs/ui-2\"",
        "learning curves: val_iou",
        "val_iou vs augment.hue_delta",
        "parallel coordinates",
    ] {
        assert!(sweep.contains(part), "the sweep page lacks {part:?}");
    }
    assert!(sweep.matches("<svg").count() >= 5, "charts inline as SVG");
    assert!(sweep.contains("Parameter importance"));
    // Worked out apart (the forest takes most of a second on a large sweep): the first page over
    // these trials fetches it once shown, naming the state of the trials it was drawn from and
    // the filter it has.
    let src = sweep.split("<div id=\"importance\" data-src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a deferred importance part");
    assert!(src.starts_with("/sweeps/ui/importance?of=") && !src.contains("where"), "{src}");
    let importance = server.page(src);
    assert!(importance.contains("No parameter importance yet") && !importance.contains("<html"), "a part of the page: {importance}");
    // The same trials again: the answer is kept, and the page shows it without a fetch.
    let again = server.page("/sweeps/ui");
    assert!(again.contains("<div id=\"importance\">\n<p class=\"note\">No parameter importance yet"), "{again}");
    // Without the state, or with one no longer kept, the trials are listed and it is worked out anew.
    for stale in ["/sweeps/ui/importance", "/sweeps/ui/importance?of=0", "/sweeps/ui/importance?of=not-hex"] {
        assert_eq!(server.page(stale), importance, "{stale}");
    }
    let filtered = server.page("/sweeps/ui?where=val_iou%20%3E%200");
    let of = src.split("of=").nth(1).unwrap();
    assert!(filtered.contains(&format!("data-src=\"/sweeps/ui/importance?of={of}&amp;where=val_iou%20%3E%200\"")), "{filtered}");
    assert_eq!(server.get("/sweeps/nosuch/importance").0, 404);
    assert_eq!(server.get("/sweeps/ui/importance?where=val_iou%20%3E").0, 400);
    assert!(sweep.contains("optimisation history"), "issue 29: the history chart on the sweep page");
    assert!(
        sweep.contains("<a href=\"/runs/ui-1\"><circle") && sweep.contains("<title>ui-1 "),
        "issue 29: a chart's points link to their trial with a tooltip"
    );
    assert!(sweep.contains("&quot;augment.hue_delta&quot; = { values = [0.0, 0.3] }"), "the sweep file as written");
    assert!(!sweep.contains("src=\"http") && !sweep.contains("<link"), "nothing from elsewhere: the page works offline");

    let trial = server.page("/runs/ui-1");
    for part in [
        "trial ui-1",
        "completed",
        "Epochs",
        "train_loss",
        "Checkpoints",
        "best",
        "last",
        "<svg",
        "/runs/ui-1/predictions.png",
        "/runs/ui-1/worst.png",
        "/runs/ui-1/log",
        "train.learning_rate",
    ] {
        assert!(trial.contains(part), "the trial page lacks {part:?}");
    }
    let checkpoint = trial.split("href=\"/files/").nth(1).and_then(|s| s.split('"').next()).expect("a checkpoint link");
    let (status, bytes) = server.request("GET", &format!("/files/{checkpoint}"));
    assert_eq!(status, 200);
    let expected = std::fs::read(trained().join("ui/ui-1/checkpoints").join(checkpoint.rsplit('/').next().unwrap())).unwrap();
    assert_eq!(bytes, expected, "the checkpoint's bytes");

    let (status, png) = server.request("GET", "/runs/ui-1/predictions.png");
    assert_eq!(status, 200);
    let grid = image::load_from_memory(&png).unwrap().into_rgb8();
    let colours: HashSet<[u8; 3]> = grid.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the prediction grid is nearly blank: {} colours", colours.len());
    // Issue 29: what the trial's worker wrote to its log while it held the trial.
    let log = server.page("/runs/ui-1/log");
    assert!(log.contains("=== trial ui-1 (attempt 1) claimed ===") && log.contains("worker-"), "{log}");
    assert!(!log.contains("trial ui-2 (attempt"), "only this trial's part: {log}");
    // Issue 30: the worst validation images beside it, their errors in the two colours.
    let (status, png) = server.request("GET", "/runs/ui-1/worst.png");
    assert_eq!(status, 200);
    let worst = image::load_from_memory(&png).unwrap().into_rgb8();
    assert_eq!(worst.width(), 8 + 4 * (160 + 8), "four columns of 160 px");
    assert!(worst.pixels().any(|p| p.0 == sweep::canvas::FALSE_POSITIVE), "the legend names false positives in their colour");

    let compare = server.page("/compare?runs=ui-1,ui-2");
    assert!(compare.contains("augment.hue_delta") && compare.contains("best val_iou"), "{compare}");
    assert!(!compare.contains(">train.learning_rate<"), "only the settings that differ: {compare}");
    assert_eq!(server.page("/compare?runs=ui-1&runs=ui-2"), compare, "the leaderboard's check boxes ask the same");
    // Issue 27, item 15: ids were not deduplicated (a 58 KB URL rendered 3.3 MB).
    let many = vec!["ui-1,ui-2"; 500].join(",");
    assert_eq!(server.page(&format!("/compare?runs={many}&runs=ui-2")), compare, "each trial once");

    let state: serde_json::Value = serde_json::from_str(&server.page("/api/sweeps/ui")).unwrap();
    assert_eq!((state["sweep"].as_str(), state["trials"].as_i64()), (Some("ui"), Some(2)), "{state}");
    assert_eq!(state["counts"]["completed"].as_i64().unwrap() + state["counts"].get("pruned").and_then(|v| v.as_i64()).unwrap_or(0), 2, "{state}");
    assert!(state["updated"].as_f64().is_some_and(|t| t > 1.7e9), "{state}");
}

#[test]
fn the_leaderboard_sorts_by_any_column_and_filters_with_the_where_language() {
    let server = Server::start(trained(), &[]);
    let order = |page: &str| -> Vec<String> {
        page.split("<td class=\"l id\"><a href=\"/runs/").skip(1).filter_map(|s| s.split('"').next()).map(String::from).collect()
    };
    let by_hue = server.page("/sweeps/ui?sort=augment.hue_delta");
    assert_eq!(order(&by_hue), ["ui-1", "ui-2"]);
    let hue = |id: &str| if id == "ui-1" { 0.0 } else { 0.3 };
    let by_id_desc: Vec<String> = order(&server.page("/sweeps/ui?sort=id"));
    assert_eq!(by_id_desc, ["ui-1", "ui-2"]);
    let filtered = server.page("/sweeps/ui?where=augment.hue_delta+%3E+0.1");
    assert_eq!(order(&filtered), ["ui-2"], "only hue 0.3 > 0.1");
    assert!(order(&filtered).iter().all(|id| hue(id) > 0.1));
    assert!(filtered.contains("value=\"augment.hue_delta &gt; 0.1\""), "the box keeps the filter");

    let (status, page) = server.get("/sweeps/ui?where=val_iou+%3E%3E+1");
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("class=\"error\">filter: "), "the filter's error on the page: {page}");
    let (status, page) = server.get("/sweeps/ui?where=nosuch+%3E+1");
    assert_eq!(status, 400);
    assert!(page.contains("unknown field") && page.contains("nosuch"), "{page}");
    // Issue 29, item 2: the learning curves' view, and its bad values refused by name.
    let view = server.page("/sweeps/ui?log=on&smooth=0.5&zoom=loss&ymin=0.1&ymax=2");
    assert!(view.contains("(smoothed 0.5, log scale, y from 0.1 to 2)") && view.contains("name=\"log\" checked"), "the form keeps the view");
    for (query, said) in [
        ("smooth=2", "smooth=2: expected a weight in [0, 1)"),
        ("ymin=0.1", "a zoom needs both ymin and ymax"),
        ("zoom=nosuch&ymin=0&ymax=1", "zoom=nosuch"),
        ("log=on&zoom=loss&ymin=0&ymax=1", "a log scale starts above 0"),
    ] {
        let (status, page) = server.get(&format!("/sweeps/ui?{query}"));
        assert_eq!(status, 400, "{query}: {page}");
        assert!(page.contains(said), "{query}: {page}");
    }
    let (status, page) = server.get("/sweeps/ui?sort=nosuch");
    assert_eq!(status, 400);
    assert!(page.contains("sort: unknown field"), "{page}");
    assert_eq!(server.get("/").0, 200, "the server is still up");
}

#[test]
fn a_missing_trial_sweep_or_page_is_a_404_page() {
    let server = Server::start(trained(), &[]);
    for path in [
        "/sweeps/nosuch",
        "/runs/ui-99",
        "/runs/..%2Fx",
        "/runs/ui-99/predictions.png",
        "/runs/ui-99/worst.png",
        "/runs/ui-99/log",
        "/nosuch",
        "/compare?runs=ui-1,ui-99",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "GET {path}: {body}");
        assert!(body.contains("<h1>Not found</h1>"), "GET {path}: a page, not a panic: {body}");
    }
    // Issue 27, item 15: the JSON routes answered their 404s with HTML.
    for (path, message) in
        [("/api/sweeps/nosuch", "no sweep \"nosuch\""), ("/api/runs/nope-1", "no trial \"nope-1\""), ("/api/nosuch", "no such route")]
    {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "GET {path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
        assert!(json["error"].as_str().unwrap().contains(message), "GET {path}: {json}");
    }
    assert!(server.get("/sweeps/uj").1.contains("did you mean ui?"), "the 404 suggests the closest sweep (escaped)");
    let (status, body) = server.get("/compare?runs=ui-1");
    assert_eq!(status, 400, "{body}");
    assert_eq!(server.get("/").0, 200, "the server is still up");
}

#[test]
fn no_route_changes_the_tracker_other_methods_are_405() {
    let runs = trained();
    let before = common::sweep(runs).args(["ls", "--json"]).output().unwrap().stdout;
    let server = Server::start(runs, &[]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/", "/sweeps/ui", "/runs/ui-1", "/compare?runs=ui-1,ui-2", "/api/sweeps/ui", "/files/ui/ui-1/config.json"] {
            assert_eq!(server.request(method, path).0, 405, "{method} {path}");
        }
    }
    // The action routes (issue 29) refuse on a dashboard started without --allow-actions.
    for path in ["/runs/ui-1/tags", "/runs/ui-1/note"] {
        let status = server.request("POST", path).0;
        assert!((400..500).contains(&status), "POST {path}: {status}");
    }
    drop(server);
    assert_eq!(common::sweep(runs).args(["ls", "--json"]).output().unwrap().stdout, before, "the tracker is as it was");
}

/// Issue 27, item 7: any Host was answered, so a DNS-rebinding page (attacker.example resolved
/// to 127.0.0.1 in the user's browser) could download /files/sweep.db.
#[test]
fn a_request_naming_another_host_is_refused_unless_allowed() {
    let runs = trained();
    let server = Server::start(runs, &["--allow-host", "lab-box"]);
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    for host in
        ["attacker.example", &format!("attacker.example:{port}"), "localhost.attacker.example", "lab-box.attacker.example", "127.0.0.1.nip.io"]
    {
        for path in ["/", "/files/sweep.db", "/api/sweeps"] {
            let (status, body) = server.request_as(host, "GET", path);
            let body = String::from_utf8_lossy(&body).to_string();
            assert_eq!(status, 403, "Host: {host} GET {path}: {body}");
            assert!(body.contains("--allow-host") && !body.contains("SQLite format"), "{body}");
        }
    }
    for host in
        [server.addr.clone(), format!("localhost:{port}"), "LOCALHOST".into(), format!("[::1]:{port}"), format!("lab-box:{port}"), "Lab-Box.".into()]
    {
        assert_eq!(server.request_as(&host, "GET", "/files/sweep.db").0, 200, "Host: {host}");
    }
}

/// Issue 27, item 3: after `rm -rf runs/*` and a new sweep, the dashboard kept showing the old
/// tracker (held open though deleted) and answered 404 for the new sweep.
#[test]
fn a_tracker_deleted_or_replaced_under_the_dashboard_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    std::fs::copy(trained().join("sweep.db"), runs.join("sweep.db")).unwrap();
    let server = Server::start(runs, &[]);
    assert!(server.page("/").contains("/sweeps/ui"));
    for entry in std::fs::read_dir(runs).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let (status, body) = server.get("/");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("sweep.db") && body.contains("no tracker"), "{body}");
    assert_eq!(server.get("/api/sweeps").0, 500);
    let mut fresh = SqliteStore::open(&runs.join("sweep.db")).unwrap();
    fresh.register_sweep("fresh", "name = \"fresh\"").unwrap();
    drop(fresh);
    let index = server.page("/");
    assert!(index.contains("/sweeps/fresh") && !index.contains("/sweeps/ui"), "the new tracker, not the old: {index}");
    assert_eq!(server.get("/sweeps/fresh").0, 200);
    assert_eq!(server.get("/sweeps/ui").0, 404);
}

#[test]
fn file_routes_never_leave_the_runs_directory() {
    let runs = trained();
    let outside = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    let link = runs.join("ui/link-out");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let server = Server::start(runs, &[]);
    assert_eq!(server.get("/files/ui/ui-1/config.json").0, 200, "a file inside is served");
    for path in [
        "/files/../ui-secret.txt",
        "/files/ui/../../ui-secret.txt",
        "/files/%2e%2e/ui-secret.txt",
        "/files/%2E%2E%2Fui-secret.txt",
        "/files/ui/%2e%2e/%2e%2e/ui-secret.txt",
        &format!("/files/{}", outside.display()),
        &format!("/files/%2F{}", outside.display().to_string().trim_start_matches('/')),
        "/files//etc/passwd",
        "/files/ui/link-out",
        "/files/ui",
        "/files/nosuch.png",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "GET {path}");
        assert!(!body.contains("secret") || body.contains("no file"), "GET {path}: {body}");
        assert!(!body.contains("root:"), "GET {path}: {body}");
    }
}

#[test]
fn a_missing_or_foreign_store_is_refused_at_start_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let out = common::sweep(dir.path()).args(["--store", missing.to_str().unwrap(), "ui", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tracker here yet"));
    assert!(!missing.exists(), "no empty tracker was made");
    let foreign = dir.path().join("other.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
    let out = common::sweep(dir.path()).args(["--store", foreign.to_str().unwrap(), "ui", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sweep tracker"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_port_in_use_is_a_clear_error_naming_it_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = common::sweep(trained()).args(["ui", "--port", &port]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("port {port}")) && err.contains("in use") && err.contains("--port"), "{err}");
}

#[test]
fn listening_beyond_this_machine_warns_that_the_tracker_becomes_readable() {
    let local = Server::start(trained(), &[]);
    assert!(local.addr.starts_with("127.0.0.1:"), "{}", local.addr);
    assert!(!local.stop().contains("warning"));
    let open = Server::start(trained(), &["--host", "0.0.0.0"]);
    let err = open.stop();
    assert!(err.contains("warning: --host 0.0.0.0") && err.contains("readable"), "{err}");
}

#[test]
fn the_server_stays_up_and_current_while_a_sweep_writes_the_tracker() {
    let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-live-wal");
    let _ = std::fs::remove_dir_all(&runs);
    let sweep = Running::start(&runs, "wal", 4);
    Running::wait_for_an_epoch(&runs, "wal");
    let server = Server::start(&runs, &[]);
    let mut epochs_seen = HashSet::new();
    let mut sweep = sweep;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, page) = server.get("/sweeps/wal");
        assert_eq!(status, 200, "{page}");
        assert_eq!(server.get("/runs/wal-1").0, 200);
        let state: serde_json::Value = serde_json::from_str(&server.page("/api/runs/wal-1")).unwrap();
        epochs_seen.insert(state["epochs"].as_i64().unwrap());
        if let Some(status) = sweep.child.try_wait().unwrap() {
            assert!(status.success(), "the sweep ran to its end while the pages were read: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "the sweep did not end within 180 s");
    }
    let state: serde_json::Value = serde_json::from_str(&server.page("/api/runs/wal-1")).unwrap();
    assert_eq!((state["status"].as_str(), state["epochs"].as_i64()), (Some("completed"), Some(4)), "{state}");
    assert!(epochs_seen.len() >= 2, "the pages followed the epochs as they came: {epochs_seen:?}");
}

#[test]
fn status_watch_refreshes_until_nothing_is_queued_or_running() {
    let out = common::sweep(trained()).args(["status", "--watch", "--interval", "0.2"]).timeout(Duration::from_secs(30)).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("sweep ui:").count(), 1, "a finished sweep is shown once: {text}");

    let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-watch");
    let _ = std::fs::remove_dir_all(&runs);
    let _sweep = Running::start(&runs, "watch", 3);
    Running::wait_for_an_epoch(&runs, "watch");
    let out = common::sweep(&runs).args(["status", "--watch", "--interval", "0.3"]).timeout(Duration::from_secs(180)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("sweep watch:").count() >= 2, "refreshed while it ran: {text}");
    assert!(text.contains("refreshing every 0.3s") && text.trim_end().ends_with(|c: char| c != ')'), "{text}");
    assert!(text.contains("1 completed"), "the last frame shows the end: {text}");

    let out = common::sweep(&runs).args(["status", "--interval", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--interval needs --watch");
}

/// A system binary (`var` overrides the path). Missing is a failure that says how to install
/// it, never a silent skip.
fn system_binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: the browser test needs Chromium and its WebDriver (tests/install-deps.sh installs Debian's `chromium` and `chromium-driver`; {var} names another)",
        path.display()
    );
    path
}

/// Headless Chromium driven over W3C WebDriver: Debian's `chromedriver` on a free loopback port,
/// one session, spoken to with ureq (already a dependency) and serde_json. Four commands are all
/// the test needs; a WebDriver or DevTools crate would add minutes of CI build time (the
/// DevTools one compiled a 1.1 MB generated protocol and a TLS stack). Both processes are
/// stopped when it is dropped.
struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(system_binary("SWEEP_CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Error statuses come back as answers, whose `value` says what the driver refused.
        let agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into();
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), agent };
        let deadline = Instant::now() + Duration::from_secs(30);
        while browser.agent.get(format!("{}/status", browser.base)).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let chromium = system_binary("SWEEP_CHROMIUM", "/usr/bin/chromium");
        // Headless, no sandbox (CI runs as root), and none of the background connections that a
        // closed network refuses.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,1600",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        let session = browser.command(
            "POST",
            "/session",
            serde_json::json!({
                "capabilities": { "alwaysMatch": { "goog:chromeOptions": { "binary": chromium, "args": args } } }
            }),
        );
        let id = session["sessionId"].as_str().expect("a WebDriver session id").to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    /// One WebDriver command; its `value`. An error answer fails the test with the driver's words.
    fn command(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let reply = match method {
            "GET" => self.agent.get(&url).call(),
            _ => self.agent.post(&url).header("Content-Type", "application/json").send(body.to_string()),
        };
        let mut reply = reply.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = reply.status().as_u16();
        let text = reply.body_mut().read_to_string().unwrap();
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("WebDriver {method} {path}: {status} {text}"));
        assert!(status == 200, "WebDriver {method} {path}: {status} {}", answer["value"]);
        answer["value"].clone()
    }

    fn navigate(&self, url: &str) {
        self.command("POST", "/url", serde_json::json!({ "url": url }));
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&self, expression: &str) -> serde_json::Value {
        self.command("POST", "/execute/sync", serde_json::json!({ "script": format!("return {expression};"), "args": [] }))
    }

    /// A PNG of the viewport.
    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.command("GET", "/screenshot", serde_json::Value::Null);
        base64::engine::general_purpose::STANDARD.decode(encoded.as_str().expect("base64 text")).expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.base.contains("/session/") {
            let _ = self.agent.delete(&self.base).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn chromium_sees_a_new_epoch_on_the_sweep_page_without_a_reload() {
    let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    let _ = std::fs::remove_dir_all(&runs);
    let _sweep = Running::start(&runs, "live", 40);
    Running::wait_for_an_epoch(&runs, "live");
    let server = Server::start(&runs, &[]);

    let browser = Browser::start();
    browser.navigate(&server.url("/sweeps/live"));
    let eval = |js: &str| browser.eval(js);
    // The leaderboard's epochs cell of live-1, and a mark that a reload would wipe out.
    let epochs_js = "Number(document.querySelector('#live table.leaderboard tr:nth-child(2) td:nth-child(6)').textContent)";
    eval("window.stillTheSamePage = true");
    let first = eval(epochs_js).as_f64().expect("an epochs cell");
    let deadline = Instant::now() + Duration::from_secs(120);
    let later = loop {
        let now = eval(epochs_js).as_f64().unwrap_or(first);
        if now > first {
            break now;
        }
        assert!(Instant::now() < deadline, "no new epoch appeared within 120 s (still {first})");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(eval("window.stillTheSamePage"), serde_json::json!(true), "the page was not reloaded");
    assert!(later > first);

    let png = browser.screenshot();
    let shot = image::load_from_memory(&png).unwrap().into_rgb8();
    let colours: HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 100, "the screenshot looks blank: {} colours", colours.len());
}

/// Issue 25, item 3: the dashboard's page of a warm-started sweep says what the other sweep
/// lends, links to it, and draws the lent trials as grey rings in its scatter charts.
#[test]
fn a_warm_started_sweep_page_links_its_lender_and_draws_its_trials() {
    let runs = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &str| {
        let text = format!(
            "name = \"{name}\"\nmethod = \"bayes\"\nrun_cap = 4\nseed = 2\n{}[train]\nepochs = 1\nbatch_size = 6\n[bayes]\nstartup_trials = 3\n{extra}\n[parameters]\n\"train.learning_rate\" = {{ distribution = \"log_uniform_values\", min = 0.00001, max = 0.05 }}\n",
            common::TINY_DATA_AND_MODEL
        );
        let file = runs.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
    };
    run("lender", "");
    run("borrower", "warm_start = [\"lender\"]");
    let server = Server::start(runs.path(), &[]);
    let page = server.page("/sweeps/borrower");
    assert!(page.contains("warm start: TPE also learns from <a href=\"/sweeps/lender\">4 trial(s) of lender</a>"), "{page}");
    assert!(page.contains("grey rings: warm start from lender"), "the scatter's caption names the lender");
    assert!(page.to_lowercase().contains("#808080"), "the lent trials are drawn in the warm-start grey");
    let cold = server.page("/sweeps/lender");
    assert!(!cold.contains("warm start") && !cold.to_lowercase().contains("#808080"), "a sweep without warm start shows none");
}

/// Issue 29, item 2, in the browser: a chart's point carries its trial's tooltip; dragging along a
/// parameter's axis of the parallel coordinates keeps only the trials whose line crosses it there
/// in the leaderboard, and a click on the axis brings them all back.
#[test]
fn brushing_the_parallel_coordinates_filters_the_leaderboard() {
    let server = Server::start(trained(), &[]);
    let browser = Browser::start();
    browser.navigate(&server.url("/sweeps/ui"));
    let eval = |js: &str| browser.eval(js);
    // The importance section fills itself once the page is shown.
    let filled = (0..100).find_map(|_| {
        let text =
            eval("(function () { var b = document.getElementById('importance'); return b.hasAttribute('data-src') ? null : b.textContent; })()");
        text.as_str().map(str::to_string).or_else(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            None
        })
    });
    assert!(filled.as_deref().is_some_and(|t| t.contains("No parameter importance yet")), "{filled:?}");
    let tooltip = eval("document.querySelector('a[href=\"/runs/ui-1\"] title').textContent");
    assert!(tooltip.as_str().is_some_and(|t| t.starts_with("ui-1") && t.contains("hue_delta=")), "{tooltip}");

    let data = eval("JSON.parse(document.querySelector('svg desc.chart-data').textContent).parallel");
    assert_eq!(data["axes"][0]["name"], "augment.hue_delta", "{data}");
    let x = data["axes"][0]["x"].as_f64().unwrap();
    let y_of = |trial: &str| data["lines"].as_array().unwrap().iter().find(|l| l["trial"] == trial).unwrap()["ys"][0].as_f64().unwrap();
    let (mine, other) = (y_of("ui-1"), y_of("ui-2"));
    assert!((mine - other).abs() > 20.0, "the two trials cross the axis apart: {mine} {other}");
    // Mouse events at chart pixels (x, from) to (x, to), then the trials the leaderboard shows.
    let brush = |from: f64, to: f64| {
        eval(&format!(
            "(function () {{
               var svg = document.querySelector('svg desc.chart-data').closest('svg');
               function at(type, x, y) {{
                 var p = svg.createSVGPoint(); p.x = x; p.y = y;
                 var c = p.matrixTransform(svg.getScreenCTM());
                 svg.dispatchEvent(new MouseEvent(type, {{clientX: c.x, clientY: c.y, bubbles: true}}));
               }}
               at('mousedown', {x}, {from}); at('mousemove', {x}, {to}); at('mouseup', {x}, {to});
               return Array.from(document.querySelectorAll('table.leaderboard tr'))
                 .filter(function (tr) {{ return tr.querySelector('td.id a') && tr.style.display !== 'none'; }})
                 .map(function (tr) {{ return tr.querySelector('td.id a').textContent; }});
             }})()"
        ))
    };
    assert_eq!(brush(mine - 6.0, mine + 6.0), serde_json::json!(["ui-1"]), "only the trial inside the range");
    let note = eval("document.getElementById('brush-note').textContent");
    assert!(note.as_str().is_some_and(|n| n.starts_with("1 of 2 trials")), "{note}");
    assert_eq!(brush(mine, mine).as_array().map(Vec::len), Some(2), "a click clears the axis's range");
}

/// Issue 29, item 5: actions from the dashboard, behind `--allow-actions`: a POST without the
/// page's token, from another site, or with no Origin at all is refused (403) and changes
/// nothing; with the token from the dashboard's own page it edits the trial's tags and note; GET
/// stays read-only, and a read-only dashboard refuses every action.
#[test]
fn actions_need_the_switch_the_token_and_the_dashboards_own_origin() {
    let copy = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(&trained().join("sweep.db")).unwrap();
    source.connection().execute("VACUUM INTO ?1", [copy.path().join("sweep.db").to_str().unwrap()]).unwrap();
    let tags_of = |server: &Server| -> String {
        let page = server.page("/runs/ui-1");
        page.split("<th>tags</th><td class=\"l\">").nth(1).map(|t| t.split('<').next().unwrap().to_string()).unwrap_or_default()
    };

    let read_only = Server::start(copy.path(), &[]);
    let own = format!("http://{}", read_only.addr);
    let (status, _, body) = read_only.post("/runs/ui-1/tags", Some(&own), "token=x&tags=team%3Dvision");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allow-actions"), "{body}");
    assert!(!read_only.page("/runs/ui-1").contains("name=\"token\""), "no forms on a read-only dashboard");
    drop(read_only);

    let server = Server::start(copy.path(), &["--allow-actions"]);
    let own = format!("http://{}", server.addr);
    let page = server.page("/runs/ui-1");
    let token = page.split("name=\"token\" value=\"").nth(1).and_then(|t| t.split('"').next()).expect("the page carries the token").to_string();
    assert_eq!(token.len(), 32, "128 random bits");
    let form = format!("token={token}&tags=team%3Dvision+stage%3Dfinal");
    for (origin, body, why) in [
        (Some(own.as_str()), "tags=team%3Dvision", "no token"),
        (Some(own.as_str()), "token=0123&tags=team%3Dvision", "another token"),
        (Some("http://evil.example"), form.as_str(), "another site"),
        (None, form.as_str(), "no Origin"),
    ] {
        let (status, _, reply) = server.post("/runs/ui-1/tags", origin, body);
        assert_eq!(status, 403, "{why}: {reply}");
    }
    assert_eq!(tags_of(&server), "", "nothing changed");
    assert_eq!(server.get("/runs/ui-1/tags").0, 405, "GET never acts");

    let (status, location, body) = server.post("/runs/ui-1/tags", Some(&own), &form);
    assert_eq!((status, location.as_deref()), (303, Some("/runs/ui-1")), "{body}");
    assert_eq!(tags_of(&server), "stage=final team=vision");
    let (status, _, _) = server.post("/runs/ui-1/tags", Some(&own), &format!("token={token}&tags=stage%3D"));
    assert_eq!(status, 303);
    assert_eq!(tags_of(&server), "team=vision", "NAME= removes a tag");
    let (status, _, body) = server.post("/runs/ui-1/tags", Some(&own), &format!("token={token}&tags=bad+name"));
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = server.post("/runs/ui-1/note", Some(&own), &format!("token={token}&note=the+baseline%0D%0Arerun"));
    assert_eq!(status, 303);
    let store = SqliteStore::open(&copy.path().join("sweep.db")).unwrap();
    assert_eq!(store.trial("ui-1").unwrap().note.as_deref(), Some("the baseline\nrerun"));
    let (status, _, _) = server.post("/runs/ui-99/note", Some(&own), &format!("token={token}&note=x"));
    assert_eq!(status, 404, "an unknown trial");
}

/// Issue 29, item 5: stop, resume and prune from the dashboard, acted on by a real worker. A
/// stop without the token changes nothing; with it the running trial ends as `stopped` at its
/// worker's next heartbeat, its recorded epochs and checkpoint kept, and its `sweep run` ends
/// without an error. Resumed, a new `sweep run` continues it from its checkpoint (no epoch
/// trained twice); pruned by hand with a note, it ends as `pruned` with that note as its reason.
/// An ended trial refuses with 409, and `sweep stop` on it exits 2 naming its status.
#[test]
fn a_running_trial_is_stopped_resumed_and_pruned_from_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut first = Running::start(&runs, "halt", 2000);
    Running::wait_for_an_epoch(&runs, "halt");
    let server = Server::start(&runs, &["--allow-actions"]);
    let own = format!("http://{}", server.addr);
    let show = |runs: &Path| -> serde_json::Value {
        let out = common::sweep(runs).args(["show", "halt-1", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let wait_for = |status: &str| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let trial = show(&runs);
            if trial["status"] == status {
                return trial;
            }
            assert!(Instant::now() < deadline, "halt-1 did not become {status}: {trial}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let page = server.page("/runs/halt-1");
    assert!(page.contains("action=\"/runs/halt-1/stop\"") && page.contains("action=\"/runs/halt-1/prune\""), "{page}");
    assert!(!page.contains("action=\"/runs/halt-1/resume\""), "a running trial has nothing to resume");
    let token = page.split("name=\"token\" value=\"").nth(1).and_then(|t| t.split('"').next()).unwrap().to_string();

    let (status, _, _) = server.post("/runs/halt-1/stop", Some("http://evil.example"), &format!("token={token}"));
    assert_eq!(status, 403);
    let (status, _, _) = server.post("/runs/halt-1/stop", Some(&own), "token=nope");
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(show(&runs)["status"], "running", "a refused stop changes nothing");

    // The page's own stop button, clicked in a real browser (its form carries the token, the
    // browser its Origin); the server answers by sending it back to the trial's page.
    let browser = Browser::start();
    browser.navigate(&server.url("/runs/halt-1"));
    browser.eval("document.querySelector('button[name=\"stop\"]').click()");
    let stopped = wait_for("stopped");
    assert!(stopped["error"].as_str().is_some_and(|e| e.contains("stopped by hand")), "{stopped}");
    let epochs_then = stopped["epochs"].as_array().unwrap().clone();
    assert!(!epochs_then.is_empty() && epochs_then.len() < 2000, "{stopped}");
    // Its sweep run ends by itself: nothing is left to claim, and a stop is not a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = first.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "sweep run did not end after its only trial stopped");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(exit.success(), "{exit:?}");
    let page = server.page("/runs/halt-1");
    assert!(page.contains("action=\"/runs/halt-1/resume\"") && !page.contains("action=\"/runs/halt-1/stop\""), "{page}");

    browser.navigate(&server.url("/runs/halt-1"));
    let url = browser.eval("location.pathname");
    assert_eq!(url.as_str(), Some("/runs/halt-1"));
    browser.eval("document.querySelector('button[name=\"resume\"]').click()");
    let deadline = Instant::now() + Duration::from_secs(30);
    while show(&runs)["status"] != "queued" {
        assert!(Instant::now() < deadline, "resume did not queue the trial");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A POST from elsewhere (with the token, even) is still refused.
    let (status, _, _) = server.post("/runs/halt-1/stop", Some("http://evil.example"), &format!("token={token}"));
    assert_eq!(status, 403);
    assert_eq!(show(&runs)["status"], "queued");
    let _second = Running::again(&runs, "halt");
    let deadline = Instant::now() + Duration::from_secs(90);
    while show(&runs)["epochs"].as_array().unwrap().len() <= epochs_then.len() + 1 {
        assert!(Instant::now() < deadline, "the resumed trial recorded no new epoch");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _, body) = server.post("/runs/halt-1/prune", Some(&own), &format!("token={token}&note=enough+seen"));
    assert_eq!(status, 303, "{body}");
    let pruned = wait_for("pruned");
    assert_eq!(pruned["error"], "pruned by hand: enough seen");
    let epochs = pruned["epochs"].as_array().unwrap();
    let numbers: Vec<i64> = epochs.iter().map(|e| e["epoch"].as_i64().unwrap()).collect();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "every epoch once, in order: {pruned}");
    assert!(numbers.len() > epochs_then.len() && numbers.len() < 2000);
    assert_eq!(&epochs[..epochs_then.len()], &epochs_then[..], "the epochs before the stop were not trained again");

    let (status, _, body) = server.post("/runs/halt-1/stop", Some(&own), &format!("token={token}"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("is pruned"), "{body}");
    let out = common::sweep(&runs).args(["stop", "halt-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trial halt-1 is pruned"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Issue 28: a sweep of the user's own program (tests/fixtures/program/fake_train.py) on the
/// dashboard: its own metrics in the leaderboard, its epochs and its log on the trial page.
#[test]
fn a_program_sweep_is_served_with_its_own_metrics_and_log() {
    let runs = tempfile::tempdir().unwrap();
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/program/fake_train.py");
    let file = runs.path().join("prog.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"prog\"\n[program]\ncommand = [\"python3\", {:?}, \"${{args}}\"]\n[train]\nepochs = 3\n[parameters]\nlr = {{ values = [0.05, 0.2] }}\n",
            program.display().to_string()
        ),
    )
    .unwrap();
    common::sweep(runs.path()).arg("run").arg(&file).assert().success();
    let server = Server::start(runs.path(), &[]);
    let sweep = server.page("/sweeps/prog");
    assert!(sweep.contains("val_acc") && sweep.contains("prog-2"), "{sweep}");
    assert!(sweep.contains("sort=val_acc") && !sweep.contains("sort=val_dice"), "no column of a metric the program does not report");
    let trial = server.page("/runs/prog-2");
    assert!(trial.contains("train_loss") && trial.contains("val_acc"), "{trial}");
    assert!(trial.contains("/runs/prog-2/log"), "{trial}");
    let log = server.page("/runs/prog-2/log");
    assert!(log.contains("epoch 3/3: training with lr=0.2") && !log.contains("lr=0.05"), "the program's log is its trial's: {log}");
}

/// Issue 26: a sweep of several objectives shows its Pareto chart, drawn as SVG with a link to
/// every trial it marks.
#[test]
fn a_sweep_of_several_objectives_shows_its_pareto_front() {
    let runs = tempfile::tempdir().unwrap();
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/program/fake_train.py");
    let file = runs.path().join("mo.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"mo\"\n[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"val_ms\"\ngoal = \"minimize\"\n[program]\ncommand = [\"python3\", {:?}, \"${{args}}\"]\n[train]\nepochs = 2\n[parameters]\nlr = {{ values = [0.01, 0.05, 0.2] }}\nms_per_lr = {{ value = 100 }}\n",
            program.display().to_string()
        ),
    )
    .unwrap();
    common::sweep(runs.path()).arg("run").arg(&file).assert().success();
    let server = Server::start(runs.path(), &[]);
    let page = server.page("/sweeps/mo");
    let at = page.find("Pareto front: 3 of 3 completed trials").unwrap_or_else(|| panic!("no Pareto chart: {page}"));
    let chart = &page[at..page[at..].find("</svg>").map_or(page.len(), |end| at + end)];
    assert!(["mo-1", "mo-2", "mo-3"].iter().all(|id| chart.contains(&format!("/runs/{id}"))), "each point links its trial");
    // Importance is worked out for each objective (here: too few trials for either yet).
    let src = page.split("<div id=\"importance\" data-src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a deferred importance part");
    let importance = server.page(src);
    assert!(importance.contains("<h3>For val_iou (maximize)</h3>") && importance.contains("<h3>For val_ms (minimize)</h3>"), "{importance}");
    assert_eq!(importance.matches("No parameter importance yet").count(), 2, "{importance}");
}

/// Issue 28's scale: a sweep of many trials is a page a browser loads at once. The leaderboard
/// lists 100 trials a page with links to the others (keeping the sort and filter), and the charts
/// draw 300 trials (the best 50 and an even sample of the rest) and say so; the optimisation
/// history's running best is still the whole sweep's.
#[test]
fn a_large_sweeps_page_lists_a_hundred_trials_a_page_and_charts_a_sample() {
    use sweep::store::{EpochLog, MetricValue, NewTrial, Reclaim, SqliteStore, Store, TrialStatus, WorkerInfo};
    let runs = tempfile::tempdir().unwrap();
    let text = "name = \"big\"\nmethod = \"random\"\nrun_cap = 350\n[train]\nepochs = 2\n\
                [parameters]\n\"augment.hue_delta\" = { distribution = \"uniform\", min = 0.0, max = 0.3 }\n";
    let spec = sweep::study::spec::parse(text, Path::new("big.toml")).unwrap();
    let mut store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    store.register_sweep("big", text).unwrap();
    let trials: Vec<NewTrial> = (0..350)
        .map(|i| {
            let point = std::collections::BTreeMap::from([("augment.hue_delta".to_string(), serde_json::json!(0.3 * i as f64 / 350.0))]);
            let t = spec.trial_of(&point).unwrap();
            NewTrial { config: t.config, params: t.params }
        })
        .collect();
    store.enqueue("big", &trials).unwrap();
    let worker = WorkerInfo { host: "h".into(), pid: 1 };
    // Trial n's val_iou is best at n = 77 (0.99), the others spread below it.
    let iou = |n: usize| if n == 77 { 0.99 } else { 0.2 + 0.7 * ((n * 37) % 350) as f64 / 350.0 };
    for n in 1..=350 {
        let claim = store.claim(Some("big"), &worker, &Reclaim::after(3600.0)).unwrap().unwrap();
        for epoch in 1..=2 {
            let metrics = vec![MetricValue { split: sweep::config::Split::Val, name: "iou".into(), value: iou(n) * epoch as f64 / 2.0 }];
            store.log_epoch(&claim.lease, &EpochLog { epoch, wall: 0.0, metrics, checkpoints: vec![] }).unwrap();
        }
        store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
    }
    drop(store);
    let server = Server::start(runs.path(), &[]);
    let rows = |page: &str| page.matches("<td class=\"l id\">").count();
    let first = server.page("/sweeps/big");
    assert_eq!(rows(&first), 100);
    assert!(first.contains("trials 1&ndash;100 of 350 (page 1 of 4)"), "{first}");
    assert!(first.contains("href=\"?page=2\"") && first.contains("href=\"?page=4\""));
    assert!(first.find("/runs/big-77\"").is_some_and(|at| at < first.find("/runs/big-1\"").unwrap_or(usize::MAX)), "ranked first");
    assert!(first.contains("The charts draw 100 of these 350 trials: the best 20"), "the sample is said");
    let unescape = |s: &str| s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let data: Vec<serde_json::Value> = first
        .split("<desc class=\"chart-data\">")
        .skip(1)
        .filter_map(|rest| serde_json::from_str(&unescape(rest.split("</desc>").next()?)).ok())
        .collect();
    let parallel = data.iter().find(|d| d.get("parallel").is_some()).expect("the parallel coordinates' data");
    let lines = parallel["parallel"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 100, "parallel coordinates draw the sample");
    assert!(lines.iter().any(|l| l["trial"] == "big-77"), "the best is always drawn");
    // The last page holds the rest; a page past the end is the last; sort and filter are kept.
    let last = server.page("/sweeps/big?page=4");
    assert_eq!(rows(&last), 50);
    assert!(last.contains("trials 301&ndash;350 of 350 (page 4 of 4)"));
    assert_eq!(rows(&server.page("/sweeps/big?page=99")), 50);
    let sorted = server.page("/sweeps/big?sort=id&where=val_iou%20%3E%200.5&page=2");
    assert!(sorted.contains("href=\"?page=1&amp;sort=id&amp;where=val_iou%20%3E%200.5\""), "{sorted}");
    for bad in ["0", "x", "-1"] {
        let (status, body) = server.get(&format!("/sweeps/big?page={bad}"));
        assert_eq!(status, 400, "page={bad}: {body}");
        assert!(body.contains(&format!("page={bad}: expected the leaderboard&#39;s page number")), "{body}");
    }
}
