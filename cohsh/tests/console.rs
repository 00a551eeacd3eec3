//! The operator console as an operator uses it: `cohesix-hive` (mock GPU
//! bridge, NineDoor, w1 beating, the console) driven by Debian's headless
//! `chromium` through `chromium-driver` (WebDriver, with fantoccini), and
//! `/metrics` checked by Debian's `promtool`. Where those are missing the
//! tests say so loudly and pass, except under `CI=true`, where they fail:
//! `scripts/setup.sh` installs them.
//!
//! With `COHESIX_CONSOLE_SHOTS=DIR` the browser test saves screenshots of
//! the main views there.

mod common;

use common::{DEADLINE, Proc};
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PROMTOOL: &str = "/usr/bin/promtool";

/// Whether `tools` exist; if not, fails under CI and skips loudly elsewhere.
fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing {} (Debian chromium, chromium-driver, prometheus): run scripts/setup.sh",
        missing.join(", ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// A running `cohesix-hive`: its console's URL and the Queen's ticket file.
struct Hive {
    proc: Proc,
    url: String,
    /// NineDoor's address.
    addr: String,
    ticket_file: PathBuf,
    dir: PathBuf,
}

impl Hive {
    /// Starts it (heartbeats every 200 ms) and waits until its demo is
    /// shown and it serves.
    fn start() -> Hive {
        let mut proc = Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_cohesix-hive"))
                .arg("--gpu-bridge-bin")
                .arg(common::gpu_bridge_bin())
                .args(["--interval-ms", "200", "--demo-seconds", "300"]),
        );
        let stdout = proc.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let start = Instant::now();
        while !lines.iter().any(|l: &String| l.starts_with("Serving for")) {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("cohesix-hive did not start serving: {lines:#?}"),
            }
        }
        std::thread::spawn(move || for _ in rx {});
        let first = &lines[0];
        let url = first
            .strip_prefix("console    ")
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("the console's URL comes first, not {first:?}"))
            .to_owned();
        let ticket_file: PathBuf = lines
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("queen ticket in ")?
                    .strip_suffix(" (mode 0600)")
            })
            .expect("the queen ticket's path")
            .into();
        let dir = ticket_file.parent().expect("temp dir").to_owned();
        let addr = lines
            .iter()
            .find_map(|l| l.strip_prefix("NineDoor   serving the hive on "))
            .expect("NineDoor's address")
            .trim()
            .to_owned();
        Hive {
            proc,
            url,
            addr,
            ticket_file,
            dir,
        }
    }

    fn ticket(&self) -> String {
        std::fs::read_to_string(&self.ticket_file)
            .expect("ticket file")
            .trim()
            .to_owned()
    }

    /// `GET path` on the console (HTTP/1.1, `Connection: close`): status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let hostport = self.url.trim_start_matches("http://").trim_end_matches('/');
        http(
            hostport,
            &format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"),
        )
    }
}

impl Drop for Hive {
    fn drop(&mut self) {
        // SIGTERM, so it stops its bridge child too.
        self.proc.terminate();
        let _ = self.proc.wait(DEADLINE);
    }
}

/// A free port on 127.0.0.1 (for chromium-driver, which takes a number).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromium-driver and a headless chromium session through it.
async fn browser() -> (Proc, Client) {
    let port = free_port();
    let driver = Proc::spawn(Command::new(CHROMEDRIVER).arg(format!("--port={port}")));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"],
        }),
    );
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) if start.elapsed() < DEADLINE => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session from chromium-driver: {e}"),
        }
    }
}

/// Saves a screenshot as `name` under `COHESIX_CONSOLE_SHOTS`, if set.
async fn shot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("COHESIX_CONSOLE_SHOTS") else {
        return;
    };
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("shots dir");
    std::fs::write(Path::new(&dir).join(name), png).expect("shot saved");
}

/// The text of `css` once `want` holds for it (within [`DEADLINE`]); the
/// panels are replaced each second, so each try finds the element afresh.
async fn text_when(c: &Client, css: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = String::from("(not found)");
    while start.elapsed() < DEADLINE {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if want(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {css} never did; last {last:?}");
}

/// Waits until no element matches `css`.
async fn gone(c: &Client, css: &str, what: &str) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if c.find_all(Locator::Css(css))
            .await
            .is_ok_and(|v| v.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {css} is still there");
}

/// Types `text` into the input `css` (cleared first).
async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.expect(css);
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("typed");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("clicked");
}

/// The newest action outcome once it mentions `sent`.
async fn outcome(c: &Client, sent: &str) -> String {
    text_when(c, "#outcomes li:first-child", sent, |t| t.contains(sent)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_watches_the_heartbeats_spawns_leases_submits_and_kills_from_the_page()
{
    if !have(&[CHROMIUM, CHROMEDRIVER]) {
        return;
    }
    let hive = Hive::start();
    let (_driver, c) = browser().await;

    // A bad ticket is refused, with a message and no session.
    c.goto(&hive.url).await.expect("login page");
    fill(&c, "#ticket", "c9t1.0000.queen.queen.1.-.bogusmac").await;
    click(&c, "#login").await;
    let refused = text_when(&c, "#login-error", "a forged ticket", |t| !t.is_empty()).await;
    assert!(refused.starts_with("login refused: "), "{refused}");
    assert!(
        !refused.contains("bogusmac"),
        "the ticket is never shown: {refused}"
    );
    shot(&c, "login-refused.png").await;

    // The Queen's ticket logs in; w1's heartbeat count grows on the page.
    fill(&c, "#ticket", &hive.ticket()).await;
    click(&c, "#login").await;
    let first: u64 = text_when(&c, "#worker-w1 .beats", "w1 shown", |t| {
        t.parse::<u64>().is_ok_and(|n| n > 0)
    })
    .await
    .parse()
    .expect("a count");
    text_when(&c, "#worker-w1 .beats", "w1's count grows", |t| {
        t.parse::<u64>().is_ok_and(|n| n > first)
    })
    .await;
    let page = c.source().await.expect("source");
    assert!(
        !page.contains(&hive.ticket()),
        "the ticket never reaches the browser"
    );
    text_when(&c, "#uptime", "the hive's uptime", |t| t.ends_with(" s")).await;
    text_when(&c, "#gpu-0 .holder", "the demo's lease", |t| {
        t.starts_with("g1")
    })
    .await;
    shot(&c, "console.png").await;

    // An action without the CSRF token is refused, and changes nothing.
    let r = c
        .execute(
            "return fetch('/action', {method: 'POST', \
               headers: {'content-type': 'application/x-www-form-urlencoded'}, \
               body: 'action=kill&id=w1'}).then(async r => [r.status, await r.text()]);",
            vec![],
        )
        .await
        .expect("fetch ran");
    assert_eq!(r[0], 403, "{r:?}");
    assert!(r[1].as_str().is_some_and(|t| t.contains("CSRF")), "{r:?}");
    let wrong = c
        .execute(
            "return fetch('/action', {method: 'POST', \
               headers: {'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': 'ab'}, \
               body: 'action=kill&id=w1'}).then(r => r.status);",
            vec![],
        )
        .await
        .expect("fetch ran");
    assert_eq!(wrong, 403);
    text_when(&c, "#worker-w1 .beats", "w1 still beats", |t| !t.is_empty()).await;

    // Spawn w2 from the page (the console runs it): it appears and beats.
    fill(&c, "#spawn-id", "w2").await;
    click(&c, "#spawn").await;
    let spawned = outcome(&c, r#"{"cmd":"spawn","role":"heartbeat","id":"w2"}"#).await;
    assert!(spawned.contains("/queen/ctl"), "{spawned}");
    assert!(spawned.contains(r#""spawned":"w2""#), "{spawned}");
    assert!(spawned.contains("(kept by the console)"), "{spawned}");
    text_when(&c, "#worker-w2 .beats", "w2 beats", |t| {
        t.parse::<u64>().is_ok_and(|n| n > 0)
    })
    .await;

    // A refused action says why.
    fill(&c, "#kill-id", "nobody").await;
    click(&c, "#kill").await;
    let no = outcome(&c, r#"{"cmd":"kill","id":"nobody"}"#).await;
    assert!(no.contains("refused: "), "{no}");

    // Release the demo's lease, lease GPU 0 to c1, submit a vadd: OK.
    fill(&c, "#release-gpu", "0").await;
    click(&c, "#release").await;
    let released = outcome(&c, r#"{"cmd":"release","gpu":"0"}"#).await;
    assert!(released.contains("hive: "), "{released}");
    fill(&c, "#lease-gpu", "0").await;
    fill(&c, "#lease-worker", "c1").await;
    click(&c, "#lease").await;
    let leased = outcome(&c, r#""cmd":"lease","gpu":"0","worker":"c1""#).await;
    assert!(leased.contains("OK LEASE granted holder=c1"), "{leased}");
    text_when(&c, "#gpu-0 .holder", "c1 holds gpu 0", |t| {
        t.starts_with("c1")
    })
    .await;
    let (job, _) = common::vadd_job(&hive.dir, "console-vadd", 16);
    fill(&c, "#submit-gpu", "0").await;
    c.find(Locator::Css("#job-file"))
        .await
        .expect("file input")
        .send_keys(&job.display().to_string())
        .await
        .expect("file chosen");
    click(&c, "#submit").await;
    let submitted = outcome(&c, "/gpu/0/job").await;
    assert!(
        submitted.contains("as c1: QUEUED console-vadd"),
        "{submitted}"
    );
    let start = Instant::now();
    loop {
        let state = c.find(Locator::Css("#job-0-console-vadd")).await.ok();
        let state = match state {
            Some(e) => e.attr("data-state").await.ok().flatten(),
            None => None,
        };
        if state.as_deref() == Some("OK") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "console-vadd never reached OK: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timeline = text_when(&c, "#job-0-console-vadd", "the timeline", |t| {
        t.contains("QUEUED") && t.contains("OK")
    })
    .await;
    assert!(timeline.find("QUEUED") < timeline.find("OK"), "{timeline}");
    shot(&c, "jobs.png").await;

    // Kill w2 from the page: it goes.
    fill(&c, "#kill-id", "w2").await;
    click(&c, "#kill").await;
    let killed = outcome(&c, r#"{"cmd":"kill","id":"w2"}"#).await;
    assert!(killed.contains(r#""killed":"w2""#), "{killed}");
    gone(&c, "#worker-w2", "w2 killed").await;

    // The audit log is there, and filters.
    fill(&c, "#log-filter", "kill").await;
    text_when(&c, "#log", "the log filtered", |t| {
        !t.is_empty() && t.lines().all(|l| l.contains("kill"))
    })
    .await;
    shot(&c, "audit-log.png").await;
    c.close().await.expect("browser closed");
}

#[test]
fn promtool_accepts_a_scrape_of_metrics() {
    if !have(&[PROMTOOL]) {
        return;
    }
    let hive = Hive::start();
    let (status, body) = hive.get("/metrics");
    assert_eq!(status, 200, "{body}");
    for want in [
        "cohesix_hive_up 1\n",
        "cohesix_workers_live ",
        "cohesix_worker_heartbeats_total{worker=\"w1\"} ",
        "cohesix_gpu_memory_total_mib{gpu=\"0\"} 16384\n",
        "cohesix_gpu_leases{state=\"active\"} 1\n",
        "cohesix_gpu_jobs{state=\"OK\"} 1\n",
        "# TYPE cohesix_console_request_duration_seconds histogram\n",
        "cohesix_transport_requests_total{op=\"Twalk\"} ",
        "cohesix_transport_errors_total{op=\"Twalk\"} ",
        "# TYPE cohesix_transport_request_duration_seconds histogram\n",
        "cohesix_transport_request_duration_seconds_bucket{le=\"+Inf\",op=\"Tread\"} ",
        "cohesix_transport_request_duration_seconds_sum{op=\"Tread\"} ",
        "cohesix_transport_request_duration_seconds_count{op=\"Tread\"} ",
        "cohesix_transport_connections_open ",
    ] {
        assert!(body.contains(want), "no {want:?} in\n{body}");
    }
    let mut check = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("scrape piped");
    let out = check.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without logging in, the pages are refused.
    let (status, _) = hive.get("/events");
    assert_eq!(status, 401);

    // The transport figures are the hive's, counting every client: three
    // `cohsh stat` runs send three Tgetattr, which nothing else in the
    // hive sends (the console and w1 never do).
    let getattrs = |body: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix("cohesix_transport_requests_total{op=\"Tgetattr\"} "))
            .map_or(0, |n| n.parse().expect("a count"))
    };
    let before = getattrs(&body);
    for _ in 0..3 {
        let out = Command::new(env!("CARGO_BIN_EXE_cohsh"))
            .args(["--addr", &hive.addr, "--ticket-file"])
            .arg(&hive.ticket_file)
            .args(["stat", "/proc/boot"])
            .output()
            .expect("cohsh runs");
        assert!(out.status.success(), "{out:?}");
    }
    let body = common::eventually(DEADLINE, "the hive's Tgetattr count", || {
        let (_, body) = hive.get("/metrics");
        (getattrs(&body) >= before + 3).then_some(body)
    });
    assert_eq!(getattrs(&body), before + 3, "{body}");
}

/// A `ninedoor` on `listen` writing the Queen's ticket to `ticket_file`;
/// returns it and the address it bound.
fn ninedoor(listen: &str, ticket_file: &Path) -> (Proc, String) {
    let mut proc = Proc::spawn(
        Command::new(common::ninedoor_bin())
            .args(["--listen", listen, "--ticket-file"])
            .arg(ticket_file),
    );
    let addr = first_line(&mut proc, "ninedoor")
        .strip_prefix("ninedoor listening on tcp ")
        .expect("ninedoor's address")
        .trim()
        .to_owned();
    (proc, addr)
}

/// `proc`'s first stdout line; the rest is drained.
fn first_line(proc: &mut Proc, what: &str) -> String {
    let stdout = proc.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let _ = tx.send(lines.next().unwrap_or_default());
        for _ in lines {}
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} prints its first line"))
}

/// One HTTP/1.1 request to `hostport`: status and body.
fn http(hostport: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(hostport).expect("console answers");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(request.as_bytes()).expect("request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

#[test]
fn the_console_outlives_the_hive_going_away_and_reconnects_when_it_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ticket_file = dir.path().join("queen.ticket");
    let (hive, addr) = ninedoor("127.0.0.1:0", &ticket_file);
    let mut console = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_cohesix-console"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--addr",
                &addr,
                "--timeout-s",
                "2",
            ])
            .arg("--metrics-ticket-file")
            .arg(&ticket_file),
    );
    let first = first_line(&mut console, "cohesix-console");
    let web = first
        .strip_prefix("console    http://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let get = |path: &str| {
        http(
            &web,
            &format!("GET {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n"),
        )
    };
    let up = |want: &str| {
        common::eventually(DEADLINE, want, || {
            let (status, body) = get("/metrics");
            (status == 200 && body.contains(want)).then_some(body)
        })
    };
    up("cohesix_hive_up 1\n");

    drop(hive);
    up("cohesix_hive_up 0\n");
    let (status, page) = get("/");
    assert_eq!(status, 200, "the login page still serves: {page}");
    let form = "ticket=c9t1.whatever";
    let (status, refused) = http(
        &web,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 401, "{refused}");
    assert!(refused.contains("login refused: "), "{refused}");

    // Back on the same address, with a new Queen ticket in the same file.
    let (_hive, again) = ninedoor(&addr, &ticket_file);
    assert_eq!(again, addr);
    up("cohesix_hive_up 1\n");
    console.terminate();
    let (status, _) = console.wait(DEADLINE);
    assert!(status.success(), "{status}");
}
