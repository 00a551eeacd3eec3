//! A Secure9P client of a NineDoor host over TCP, for the tests that run
//! the host (and real bridges) on 127.0.0.1: attach, write-and-read-back,
//! `cat`, `ls`, `/queen/ctl` commands and the audit log.
#![allow(dead_code)]

use ninedoor::host::Host;
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags};
use secure9p_transport::client::{CallError, Connection, connect_tcp};
use std::time::Duration;

/// Runs `test` on a two-thread runtime; fails it after `deadline`.
pub fn run_within<F: Future<Output = ()>>(deadline: Duration, test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            tokio::time::timeout(deadline, test)
                .await
                .expect("test deadline");
        });
}

/// The errno of a call that must have failed with one.
pub fn fs(e: CallError) -> FsError {
    match e {
        CallError::Fs(e) => e,
        other => panic!("not an errno: {other}"),
    }
}

/// One attached connection.
pub struct Client {
    pub conn: Connection,
    pub root: Fid,
}

impl Client {
    /// Connects to `host` and attaches with `ticket`.
    pub async fn attach(host: &Host, ticket: &str) -> Client {
        let conn = connect_tcp(host.tcp_addr(), 64 * 1024)
            .await
            .expect("connect");
        let root = conn.attach("test", ticket).await.expect("attach");
        Client { conn, root }
    }

    /// Opens `path`, writes `data` through the fid, reads its reply back
    /// (empty if the read fails).
    pub async fn exchange(&self, path: &str, data: &[u8]) -> (Result<u32, FsError>, String) {
        let fid = self.conn.walk(self.root, path).await.expect("walk");
        self.conn.lopen(fid, LOpenFlags::RDWR).await.expect("open");
        let written = self.conn.write(fid, 0, data).await.map_err(fs);
        let reply = self.conn.read_to_end(fid, 0).await.unwrap_or_default();
        let _ = self.conn.clunk(fid).await;
        (written, String::from_utf8(reply).expect("utf-8"))
    }

    /// Reads `path` whole.
    pub async fn cat(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let fid = self.conn.walk(self.root, path).await.map_err(fs)?;
        let r = match self.conn.lopen(fid, LOpenFlags::empty()).await {
            Ok(_) => self.conn.read_to_end(fid, 0).await.map_err(fs),
            Err(e) => Err(fs(e)),
        };
        let _ = self.conn.clunk(fid).await;
        r
    }

    /// The names in directory `path`, sorted, without `.` and `..`.
    pub async fn ls(&self, path: &str) -> Vec<String> {
        let fid = self.conn.walk(self.root, path).await.expect("walk");
        self.conn
            .lopen(fid, LOpenFlags::empty())
            .await
            .expect("open");
        let mut names: Vec<String> = self
            .conn
            .readdir(fid)
            .await
            .expect("readdir")
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| n != "." && n != "..")
            .collect();
        let _ = self.conn.clunk(fid).await;
        names.sort();
        names
    }

    /// A `/queen/ctl` command that must succeed: its JSON reply.
    pub async fn command(&self, line: &str) -> serde_json::Value {
        let (written, reply) = self.exchange("queen/ctl", line.as_bytes()).await;
        assert!(written.is_ok(), "{line}: {written:?} {reply}");
        serde_json::from_str(&reply).expect("json reply")
    }

    /// A `/queen/ctl` command that must fail: its errno.
    pub async fn refused(&self, line: &str) -> FsError {
        let (written, reply) = self.exchange("queen/ctl", line.as_bytes()).await;
        written.expect_err(&format!("{line} was accepted: {reply}"))
    }

    /// `/log/queen.log` as text.
    pub async fn log(&self) -> String {
        String::from_utf8(self.cat("log/queen.log").await.expect("log")).expect("utf-8")
    }
}
