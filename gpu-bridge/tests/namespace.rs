//! The served namespace, through the sans-IO 9P client against a
//! `secure9p_core::Server`, in memory: what a queen or a GPU worker sees.

mod common;

use common::*;
use gpu_bridge::{CpuExecutor, JobDescriptor, ServeOptions, StatusLine, server};
use secure9p_core::codec::LOpenFlags;
use secure9p_core::{Claims, FsError, Role, TicketAuthority};

const KEY: [u8; 32] = [7; 32];

fn tickets() -> TicketAuthority {
    TicketAuthority::new(KEY)
}

fn ticket(role: Role, subject: &str, scope: &str) -> String {
    let mut id = [0u8; 32];
    id[..subject.len()].copy_from_slice(subject.as_bytes());
    tickets()
        .mint(
            id,
            &Claims {
                role,
                subject: subject.into(),
                expires: u64::MAX,
                scope: scope.into(),
            },
        )
        .unwrap()
}

#[test]
fn write_a_job_and_read_its_status() {
    let (bridge, _) = bridge(1);
    let srv = server(
        &bridge,
        ServeOptions {
            tickets: None,
            anonymous: true,
        },
    )
    .unwrap();
    let mut s = Session::attach(srv, "dev", "").unwrap();

    let info: serde_json::Value = serde_json::from_str(&s.cat("gpu/0/info").unwrap()).unwrap();
    assert_eq!(info["uuid"], "GPU-00000000-0000-4000-8000-000000000000");
    assert_eq!(info["sm_count"], 16);
    assert_eq!(info["source"], "mock");
    assert_eq!(
        s.cat("gpu/0/ctl").unwrap(),
        "IDLE gpu=0 running=0 waiting=0\n"
    );

    let (r, reply) = s.write_file(
        "gpu/0/ctl",
        b"LEASE holder=w1 mem_mb=256 streams=2 ttl_s=60\n",
    );
    assert!(r.is_ok());
    assert!(
        reply.starts_with("OK LEASE granted holder=w1 mem_mb=256 streams=2"),
        "{reply}"
    );

    // A tail -f reader keeps its fid and offset across the job's life.
    let status = s.open("gpu/0/status", LOpenFlags::empty()).unwrap();
    assert_eq!(s.read_all(status).unwrap(), "");

    let job = vadd_job("job-1").to_json();
    let (r, reply) = s.write_file("gpu/0/job", job.as_bytes());
    assert_eq!(r, Ok(job.len() as u32));
    assert_eq!(reply, "QUEUED job-1 priority=0 position=1\n");
    let seen = s.read_all(status).unwrap();
    assert_eq!(seen, "QUEUED job-1 priority=0 position=1\n");

    assert_eq!(bridge.run_ready(0, &mut CpuExecutor), 1);
    let rest = s.read_from(status, seen.len() as u64).unwrap();
    let lines: Vec<StatusLine> = String::from_utf8(rest)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        StatusLine::Running {
            job_id: "job-1".into()
        }
    );
    match &lines[1] {
        StatusLine::Ok { job_id, values, .. } => {
            assert_eq!(job_id, "job-1");
            assert_eq!(values, &[11.0, 22.0, 33.0, 0.0]);
        }
        other => panic!("{other}"),
    }

    let result: serde_json::Value =
        serde_json::from_str(s.cat("gpu/0/result").unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(result["job_id"], "job-1");
    assert_eq!(result["values"], serde_json::json!([11.0, 22.0, 33.0, 0.0]));

    let stats: serde_json::Value = serde_json::from_str(&s.cat("gpu/0/stats").unwrap()).unwrap();
    assert_eq!(stats["holder"], "w1");
    assert_eq!(stats["totals"]["ok"], 1);
    assert_eq!(stats["recent"][0]["job_id"], "job-1");
    assert_eq!(stats["recent"][0]["outcome"], "OK");
    assert_eq!(stats["occupancy"]["streams_cap"], 2);

    let lease: serde_json::Value = serde_json::from_str(&s.cat("gpu/0/lease").unwrap()).unwrap();
    assert_eq!(lease["active"]["holder"], "w1");
    assert_eq!(lease["active"]["mem_mb"], 256);
}

#[test]
fn refused_writes_fail_with_an_errno_and_say_why() {
    let (bridge, _) = bridge(1);
    let srv = server(
        &bridge,
        ServeOptions {
            tickets: None,
            anonymous: true,
        },
    )
    .unwrap();
    let mut s = Session::attach(srv, "dev", "").unwrap();
    let (r, reply) = s.write_file("gpu/0/job", vadd_job("j").to_json().as_bytes());
    assert_eq!(r, Err(FsError::NotPermitted));
    assert_eq!(reply, "ERR EPERM no active lease on gpu 0\n");

    s.write_file("gpu/0/ctl", b"LEASE holder=w1 mem_mb=64 ttl_s=60")
        .0
        .unwrap();
    let mut bad = vadd_job("j");
    bad.bytes_hash = "00".repeat(32);
    let (r, reply) = s.write_file("gpu/0/job", bad.to_json().as_bytes());
    assert_eq!(r, Err(FsError::BadMessage));
    assert!(reply.starts_with("ERR HASH bytes_hash mismatch"), "{reply}");

    let (r, reply) = s.write_file("gpu/0/ctl", b"PRIORITY high");
    assert_eq!(r, Err(FsError::Invalid));
    assert!(reply.starts_with("ERR COMMAND"), "{reply}");

    // Read-only files refuse to open for writing.
    assert_eq!(
        s.open("gpu/0/status", LOpenFlags::RDWR).unwrap_err(),
        FsError::AccessDenied
    );
    // The engine's audit of control writes reaches the bridge's log.
    let log = bridge.log_lines().join("\n");
    assert!(
        log.contains("9p control-write path=/gpu/0/ctl error="),
        "{log}"
    );
}

#[test]
fn gpu_workers_with_tickets_reach_only_their_gpu() {
    let (bridge, _) = bridge(2);
    bridge
        .control("1", b"LEASE holder=w1 mem_mb=64 ttl_s=60", &queen())
        .unwrap();
    let options = || ServeOptions {
        tickets: Some(tickets()),
        anonymous: false,
    };
    // Without a ticket, no attach.
    assert!(Session::attach(server(&bridge, options()).unwrap(), "x", "").is_err());

    let w1 = ticket(Role::WorkerGpu, "w1", "1");
    let mut s = Session::attach(server(&bridge, options()).unwrap(), "w1", &w1).unwrap();
    let (r, reply) = s.write_file("gpu/1/job", vadd_job("mine").to_json().as_bytes());
    assert!(r.is_ok(), "{reply}");
    assert!(s.cat("gpu/1/status").unwrap().starts_with("QUEUED mine"));
    // The queen's ctl and the other GPU are out of reach.
    assert_eq!(
        s.open("gpu/1/ctl", LOpenFlags::RDWR).unwrap_err(),
        FsError::AccessDenied
    );
    assert_eq!(s.cat("gpu/0/info").unwrap_err(), FsError::AccessDenied);

    // Another worker with a ticket for the same GPU is not the holder.
    let w2 = ticket(Role::WorkerGpu, "w2", "1");
    let mut s2 = Session::attach(server(&bridge, options()).unwrap(), "w2", &w2).unwrap();
    let (r, reply) = s2.write_file("gpu/1/job", vadd_job("theirs").to_json().as_bytes());
    assert_eq!(r, Err(FsError::NotPermitted));
    assert_eq!(reply, "ERR EPERM w2 is not the lease holder (w1)\n");

    // The log names the ticket by id (never its text).
    let log = bridge.log_lines().join("\n");
    assert!(log.contains("by=worker-gpu:w2 ticket="), "{log}");
    assert!(!log.contains(&w2), "ticket text leaked into the log");

    let queen = ticket(Role::Queen, "queen", "");
    let mut q = Session::attach(server(&bridge, options()).unwrap(), "queen", &queen).unwrap();
    let job = JobDescriptor::inline("from-queen", &vadd_workload());
    assert!(
        q.write_file("gpu/1/job", job.to_json().as_bytes())
            .0
            .is_ok()
    );
    assert!(q.write_file("gpu/1/ctl", b"RELEASE").0.is_ok());
}
