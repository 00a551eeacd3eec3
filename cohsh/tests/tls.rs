//! The whole hive on mutual TLS over 127.0.0.1: certificates made with
//! `ninedoor cert`, `gpu-bridge-host --mock` and `ninedoor` serving TLS,
//! NineDoor dialling the bridge over TLS with its own certificate, and
//! `cohsh` (Queen and GPU worker) and `worker-heartbeat` as TLS clients:
//! lease, job, result. A plain client and a client without the CA's
//! certificate are refused with a log line while the hive keeps serving;
//! a plain listener on a non-loopback address refuses to start.

mod common;

use common::{
    Bridge, DEADLINE, NineDoor, Proc, Run, bridge_key, eventually, ninedoor_bin, ok, result_values,
    run, vadd_job,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// `ninedoor cert …` in `dir`.
fn cert(dir: &Path, args: &[&str]) -> Run {
    run(Command::new(ninedoor_bin())
        .arg("cert")
        .args(args)
        .arg("--dir")
        .arg(dir))
}

/// `--tls-cert DIR/NAME.pem --tls-key DIR/NAME.key --tls-ca DIR/ca.pem`.
fn tls_flags(dir: &Path, name: &str) -> Vec<String> {
    let file = |f: String| dir.join(f).to_str().expect("utf-8 path").to_owned();
    vec![
        "--tls-cert".into(),
        file(format!("{name}.pem")),
        "--tls-key".into(),
        file(format!("{name}.key")),
        "--tls-ca".into(),
        file("ca.pem".into()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_hive_runs_a_gpu_job_with_every_link_on_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    ok(cert(&pki, &["ca"]));
    ok(cert(
        &pki,
        &["server", "queen.hive.test", "--also", "127.0.0.1"],
    ));
    // NineDoor dials the bridge by IP address: its certificate names it.
    ok(cert(&pki, &["server", "127.0.0.1"]));
    ok(cert(&pki, &["client", "operator"]));
    for f in [
        "ca.pem",
        "ca.key",
        "queen.hive.test.key",
        "127.0.0.1.pem",
        "operator.key",
    ] {
        let mode = std::fs::metadata(pki.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let again = cert(&pki, &["client", "operator"]);
    assert_eq!(again.code, Some(2), "never overwrites: {again:?}");
    assert!(
        again.stderr.contains("exists; not overwriting"),
        "{again:?}"
    );

    let key = bridge_key(dir.path());
    let bridge = Bridge::start_with("127.0.0.1:0", &key, &strs(&tls_flags(&pki, "127.0.0.1")));
    let queen_tls = tls_flags(&pki, "queen.hive.test");
    let mut hive_args = vec![
        "--gpu-bridge",
        &bridge.addr,
        "--gpu-bridge-key",
        key.to_str().unwrap(),
    ];
    hive_args.extend(strs(&queen_tls));
    let hive = NineDoor::start(&hive_args);

    let operator = tls_flags(&pki, "operator");
    // The Queen and the workers, over TLS; cohsh verifies the hive's name.
    let mut tls = strs(&operator);
    tls.extend(["--tls-server-name", "queen.hive.test"]);
    let queen = |args: &[&str]| hive.queen(&[&tls[..], args].concat());
    let worker = |ticket: &str, args: &[&str]| hive.with_ticket(ticket, &[&tls[..], args].concat());

    eventually(DEADLINE, "gpu 0 installed over the TLS bridge link", || {
        (queen(&["ls", "/gpu"]).stdout.trim() == "0/").then_some(())
    });
    let lease = ok(queen(&[
        "gpu", "lease", "0", "--mem-mb", "128", "--ttl-s", "60", "--worker", "g1",
    ]));
    let g1 = lease.stdout.trim().to_owned();
    assert!(
        lease
            .stderr
            .contains("leased gpu 0 to g1 (bridge: OK LEASE granted"),
        "{lease:?}"
    );

    let (job, expected) = vadd_job(dir.path(), "tls-1", 500);
    let submit = ok(worker(&g1, &["gpu", "submit", "0", job.to_str().unwrap()]));
    assert_eq!(submit.stdout.trim(), "tls-1");
    let status = ok(worker(&g1, &["gpu", "status", "0", "-f", "--job", "tls-1"]));
    assert!(
        status
            .stdout
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("OK tls-1 "),
        "{status:?}"
    );
    let result = ok(worker(&g1, &["gpu", "result", "0", "--job", "tls-1"]));
    let result: serde_json::Value = serde_json::from_str(result.stdout.trim()).unwrap();
    assert_eq!(result_values(&result), expected);

    // worker-heartbeat over TLS, verifying the hive by its IP address.
    let hb = ok(queen(&["spawn", "heartbeat", "w1"]))
        .stdout
        .trim()
        .to_owned();
    let beats = run(Command::new(env!("CARGO_BIN_EXE_worker-heartbeat"))
        .args([
            "--addr",
            &hive.addr,
            "--ticket",
            &hb,
            "--interval-ms",
            "10",
            "--count",
            "3",
        ])
        .args(&operator));
    assert_eq!(beats.code, Some(0), "{beats:?}");
    let log = ok(queen(&["cat", "/worker/w1/telemetry"]));
    assert_eq!(log.stdout.matches("heartbeat seq=").count(), 3, "{log:?}");

    // A plain client gets nowhere and is told so; so does one whose
    // certificate comes from another CA. The hive keeps serving.
    let plain = hive.queen(&["cat", "/proc/boot"]);
    assert_eq!(plain.code, Some(5), "{plain:?}");
    assert!(plain.stderr.contains("give --tls-cert"), "{plain:?}");
    let other = dir.path().join("other");
    ok(cert(&other, &["ca"]));
    ok(cert(&other, &["client", "operator"]));
    let stranger_flags = tls_flags(&other, "operator");
    let mut stranger = strs(&stranger_flags);
    stranger[5] = tls[5]; // trusts the right CA for the server
    let refused = hive.queen(
        &[
            &stranger[..],
            &["--tls-server-name", "queen.hive.test", "cat", "/proc/boot"],
        ]
        .concat(),
    );
    assert_eq!(refused.code, Some(5), "{refused:?}");
    assert!(
        refused.stderr.contains("TLS with the hive at tls:")
            && refused.stderr.contains("UnknownCA"),
        "{refused:?}"
    );
    // A wrong server name: cohsh refuses the hive.
    let misnamed = hive.queen(
        &[
            &strs(&operator)[..],
            &["--tls-server-name", "bridge.hive.test", "cat", "/proc/boot"],
        ]
        .concat(),
    );
    assert_eq!(misnamed.code, Some(5), "{misnamed:?}");
    assert!(
        misnamed.stderr.contains("NotValidForName")
            || misnamed.stderr.contains("not valid for name"),
        "{misnamed:?}"
    );
    ok(queen(&["cat", "/proc/boot"]));

    let NineDoor { mut proc, .. } = hive;
    proc.terminate();
    let (status, stderr) = proc.wait(DEADLINE);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("ninedoor: tls: refused 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("not a TLS 1.3 ClientHello"), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    drop(bridge);
}

#[test]
fn a_plain_listener_on_a_network_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(
        Command::new(ninedoor_bin())
            .args(["--listen", "0.0.0.0:0", "--ticket-file"])
            .arg(dir.path().join("queen.ticket")),
    );
    let (status, stderr) = proc.wait(DEADLINE);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("refusing plain TCP on 0.0.0.0:0: not a loopback address")
            && stderr.contains("--insecure-plain-tcp"),
        "{stderr}"
    );
    assert!(!dir.path().join("queen.ticket").exists(), "nothing written");
    // Some TLS flags but not all: a usage error naming the missing ones.
    let partial = run(Command::new(ninedoor_bin()).args(["--tls-cert", "x.pem", "--print-config"]));
    assert_eq!(partial.code, Some(1), "{partial:?}");
    assert!(
        partial.stderr.contains("missing --tls-key, --tls-ca"),
        "{partial:?}"
    );
    let shown = ok(run(
        Command::new(ninedoor_bin()).args(["--insecure-plain-tcp", "--print-config"])
    ));
    assert!(
        shown.stdout.contains("insecure_plain_tcp = true"),
        "{shown:?}"
    );
}
