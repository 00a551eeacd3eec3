//! The console's HTML: the login page, the page shell, and one fragment
//! per panel (hive, workers, GPUs, jobs, log) that the live stream sends
//! whole each second. Charts are SVG drawn here: no chart library, no build
//! step, nothing for the Content-Security-Policy to allow but the
//! console's own script and style sheet.
//!
//! It must escape everything it did not write itself: every name, line and
//! value comes from the hive.

use super::hive::{BUCKET_S, GpuView, HISTORY, JobView, Snapshot, WorkerView, unix_s};
use serde_json::Value;
use std::fmt::Write;

/// `text` with `&<>"'` escaped, for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\">\
<title>{}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
<body>{body}</body></html>\n",
        escape(title)
    )
}

/// The login page, with `message` (a refusal) if any.
pub fn login(hive: &str, message: Option<&str>) -> String {
    let note = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" id=\"login-error\">{}</p>", escape(m))
    });
    shell(
        "Cohesix console: log in",
        &format!(
            "<main class=\"login\"><h1>Cohesix console</h1>\
<p>The hive at <code>{}</code>. Log in with the Queen's ticket (the file <code>ninedoor</code> \
or <code>cohesix-hive</code> wrote, mode 0600). It stays in this console's memory, never in \
the browser.</p>{note}\
<form method=\"post\" action=\"/login\" autocomplete=\"off\">\
<label>Queen ticket <input type=\"password\" name=\"ticket\" id=\"ticket\" required></label>\
<button type=\"submit\" id=\"login\">Log in</button></form></main>",
            escape(hive)
        ),
    )
}

/// The console page: the panels the live stream fills, and the actions.
pub fn console(hive: &str, csrf: &str, snap: &Snapshot) -> String {
    let panels = Panels::of(snap);
    shell(
        "Cohesix console",
        &format!(
            "<header><h1>Cohesix console</h1><span>hive <code>{hive}</code></span>\
<span id=\"live\" class=\"muted\">connecting…</span>\
<form method=\"post\" action=\"/logout\"><button type=\"submit\" id=\"logout\">Log out</button></form></header>\
<meta name=\"csrf\" content=\"{csrf}\">\
<div id=\"banner\">{banner}</div>\
<main>\
<section class=\"hive\"><h2>Hive</h2><div id=\"hive\">{hive_panel}</div></section>\
<section><h2>Workers</h2><div id=\"workers\">{workers}</div>\
<form class=\"action\" data-action=\"spawn\"><input name=\"id\" placeholder=\"id (w2)\" id=\"spawn-id\">\
<label><input type=\"checkbox\" name=\"run\" checked> run it here</label>\
<button type=\"submit\" id=\"spawn\">Spawn heartbeat worker</button></form>\
<form class=\"action\" data-action=\"kill\"><input name=\"id\" placeholder=\"id\" id=\"kill-id\" required>\
<button type=\"submit\" id=\"kill\">Kill worker</button></form></section>\
<section><h2>GPUs</h2><div id=\"gpus\">{gpus}</div>\
<form class=\"action\" data-action=\"lease\"><input name=\"gpu\" placeholder=\"gpu\" id=\"lease-gpu\" required>\
<input name=\"worker\" placeholder=\"worker (c1)\" id=\"lease-worker\">\
<input name=\"mem_mb\" placeholder=\"MiB (256)\" size=\"8\"><input name=\"ttl_s\" placeholder=\"ttl s (600)\" size=\"8\">\
<button type=\"submit\" id=\"lease\">Lease</button></form>\
<form class=\"action\" data-action=\"release\"><input name=\"gpu\" placeholder=\"gpu\" id=\"release-gpu\" required>\
<button type=\"submit\" id=\"release\">Release</button></form>\
<form class=\"action\" data-action=\"submit\"><input name=\"gpu\" placeholder=\"gpu\" id=\"submit-gpu\" required>\
<input type=\"file\" name=\"job\" id=\"job-file\" accept=\".json,application/json\" required>\
<button type=\"submit\" id=\"submit\">Submit job</button></form></section>\
<section><h2>Jobs</h2><div id=\"jobs\">{jobs}</div></section>\
<section class=\"wide\"><h2>Actions</h2><ol id=\"outcomes\" reversed></ol></section>\
<section class=\"wide\"><h2>Audit log</h2>\
<input id=\"log-filter\" placeholder=\"filter (e.g. ticket-refused, w2, errno=)\">\
<div id=\"log\">{log}</div></section>\
</main><script src=\"/app.js\"></script>",
            hive = escape(hive),
            csrf = escape(csrf),
            banner = panels.banner,
            hive_panel = panels.hive,
            workers = panels.workers,
            gpus = panels.gpus,
            jobs = panels.jobs,
            log = panels.log,
        ),
    )
}

/// The panels of one snapshot, as HTML fragments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Panels {
    /// The hive-down banner (empty while it answers).
    pub banner: String,
    /// Uptime, limits, providers.
    pub hive: String,
    /// Workers with their charts.
    pub workers: String,
    /// GPUs.
    pub gpus: String,
    /// Job timelines.
    pub jobs: String,
    /// The audit log's tail.
    pub log: String,
}

impl Panels {
    /// Renders `snap`.
    pub fn of(snap: &Snapshot) -> Panels {
        Panels {
            banner: banner(snap),
            hive: hive(snap),
            workers: workers(&snap.workers),
            gpus: gpus(&snap.gpus),
            jobs: jobs(&snap.jobs),
            log: log(&snap.log),
        }
    }
}

fn banner(snap: &Snapshot) -> String {
    match &snap.down {
        Some(why) => format!(
            "<p class=\"error\" id=\"down\">The hive is not answering: {} — reconnecting by itself; \
the panels show what it last said.</p>",
            escape(why)
        ),
        None => String::new(),
    }
}

/// `3 h 02 min`, `5 min 07 s`, `42 s`.
fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn hive(snap: &Snapshot) -> String {
    if snap.at == 0 {
        return "<p class=\"muted\">not read yet</p>".to_owned();
    }
    let mut out = format!("<p>{}</p><table class=\"kv\">", escape(&snap.banner));
    if let Some(started) = snap
        .boot_value("started")
        .and_then(|s| s.parse::<u64>().ok())
    {
        let _ = write!(
            out,
            "<tr><th>uptime</th><td id=\"uptime\">{}</td></tr>",
            duration(unix_s().saturating_sub(started))
        );
    }
    for (k, v) in &snap.boot {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    out.push_str("</table><p>providers</p><ul>");
    for p in &snap.providers {
        let _ = write!(out, "<li><code>{}</code></li>", escape(p));
    }
    let _ = write!(
        out,
        "</ul><p class=\"muted\">audit log ring: {} bytes taken, {} missed</p>",
        snap.log_bytes, snap.log_missed
    );
    out
}

/// A bar chart of beats per bucket, as SVG.
pub fn chart(rate: &[u64]) -> String {
    const W: usize = 180;
    const H: u64 = 32;
    let peak = rate.iter().copied().max().unwrap_or(0).max(1);
    let bar = (W / rate.len().max(1)).max(1);
    let mut out = format!(
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\
<title>heartbeats per {BUCKET_S} s over the last {} min (peak {peak})</title>",
        HISTORY.as_secs() / 60
    );
    for (i, n) in rate.iter().enumerate() {
        let h = (n * H).div_ceil(peak);
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\"></rect>",
            i * bar,
            H - h,
            bar.saturating_sub(1).max(1)
        );
    }
    out.push_str("</svg>");
    out
}

fn workers(list: &[WorkerView]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">no workers</p>".to_owned();
    }
    let mut out = String::from(
        "<table><tr><th>worker</th><th>heartbeats</th><th>rate, last 5 min</th><th>last line</th><th>ring</th></tr>",
    );
    for w in list {
        let id = escape(&w.id);
        let _ = write!(
            out,
            "<tr id=\"worker-{id}\"><td>{id}</td><td class=\"beats\">{}</td><td>{}</td>\
<td><code>{}</code></td><td>{} B, {} missed</td></tr>",
            w.beats,
            chart(&w.rate),
            escape(&w.last),
            w.ring_bytes,
            w.missed
        );
    }
    out.push_str("</table>");
    out
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => escape(s),
        v => escape(&v.to_string()),
    }
}

fn gpus(list: &[GpuView]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">no GPUs (no bridge, or it is not reached yet)</p>".to_owned();
    }
    let mut out = String::from(
        "<table><tr><th>gpu</th><th>name</th><th>health</th><th>lease holder</th><th>util</th><th>memory</th><th>jobs ok/failed</th></tr>",
    );
    for g in list {
        let id = escape(&g.id);
        let health = match &g.trouble {
            Some(t) => format!("<span class=\"bad\">{}</span>", escape(t)),
            None => "<span class=\"good\">ok</span>".to_owned(),
        };
        let waiting = g.lease["waiting"].as_array().map_or(0, Vec::len);
        let holder = match g.holder() {
            Some(h) => format!(
                "{} <span class=\"muted\">({} MiB, {} s left{})</span>",
                escape(h),
                num(&g.lease["active"]["mem_mb"]),
                g.lease["active"]["remaining_ms"].as_u64().unwrap_or(0) / 1000,
                match waiting {
                    0 => String::new(),
                    n => format!(", {n} waiting"),
                }
            ),
            None => "<span class=\"muted\">none</span>".to_owned(),
        };
        let u = &g.stats["utilisation"];
        let total = g.info["memory_mb"].as_u64();
        let free = u["memory_free_mb"].as_u64();
        let memory = match (total, free) {
            (Some(t), Some(f)) => format!("{} / {t} MiB used", t.saturating_sub(f)),
            (Some(t), None) => format!("{t} MiB"),
            _ => "–".to_owned(),
        };
        let _ = write!(
            out,
            "<tr id=\"gpu-{id}\"><td>{id}</td><td>{}</td><td class=\"health\">{health}</td><td class=\"holder\">{holder}</td>\
<td>{} %</td><td>{memory}</td><td>{}/{}</td></tr>",
            num(&g.info["name"]),
            num(&u["gpu_util_pct"]),
            num(&g.stats["totals"]["ok"]),
            num(&g.stats["totals"]["failed"]),
        );
    }
    out.push_str("</table>");
    out
}

fn jobs(list: &[JobView]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">no jobs yet</p>".to_owned();
    }
    let mut out = String::from("<ul class=\"jobs\">");
    for j in list.iter().rev() {
        let id = escape(&j.id);
        let mut steps = String::new();
        let first = j.steps.first().map_or(0, |(_, t)| *t);
        for (i, (state, t)) in j.steps.iter().enumerate() {
            if i > 0 {
                steps.push_str(" → ");
            }
            let _ = write!(
                steps,
                "<span class=\"state {}\">{}</span> <span class=\"muted\">+{} s</span>",
                escape(&state.to_lowercase()),
                escape(state),
                t.saturating_sub(first)
            );
        }
        let _ = write!(
            out,
            "<li id=\"job-{}-{id}\" data-state=\"{}\"><code>{id}</code> on gpu {}: {steps} <span class=\"muted\">{}</span></li>",
            escape(&j.gpu),
            escape(j.state()),
            escape(&j.gpu),
            escape(&j.detail.chars().take(40).collect::<String>()),
        );
    }
    out.push_str("</ul>");
    out
}

fn log(lines: &[String]) -> String {
    let mut out = String::from("<pre class=\"log\">");
    for l in lines.iter().rev().take(200).rev() {
        // No newline between the lines: each is a block, and a filtered-out
        // one must leave no blank line behind.
        let _ = write!(out, "<span>{}</span>", escape(l));
    }
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_text_is_escaped() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
        let snap = Snapshot {
            at: 1,
            workers: vec![WorkerView {
                id: "w1".into(),
                last: "1 note <script>".into(),
                rate: vec![0; 30],
                ..WorkerView::default()
            }],
            log: vec!["<img src=x>".into()],
            ..Snapshot::default()
        };
        let p = Panels::of(&snap);
        assert!(!p.workers.contains("<script>") && p.workers.contains("&lt;script&gt;"));
        assert!(!p.log.contains("<img"));
    }

    #[test]
    fn the_chart_scales_to_the_peak() {
        let svg = chart(&[0, 2, 4]);
        assert!(svg.contains("height=\"32\"></rect>"), "{svg}");
        assert!(svg.contains("height=\"16\"></rect>"), "{svg}");
        assert!(svg.contains("height=\"0\"></rect>"), "{svg}");
    }

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(307), "5 min 07 s");
        assert_eq!(duration(3 * 3600 + 120), "3 h 02 min");
    }
}
