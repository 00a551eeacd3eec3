//! The Queen's session with NineDoor: attached once with the Queen's
//! ticket, then `/queen/ctl` commands as `cohsh` runs them (walk, open
//! read-write, one write, read the reply back, clunk), each timed, and
//! listings of `/gpu`. A refusal (the write failing with an errno) is a
//! result to count, not an error; only a broken or silent connection is.

use super::ScaleError;
use ninedoor::Command;
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags};
use secure9p_transport::client::{CallError, Connection, connect_tcp};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The msize asked for: a `/queen/ctl` reply (a worker's ticket) and a
/// listing of a few thousand GPUs each fit in a read or two.
pub const MSIZE: u32 = 128 * 1024;

/// A `/queen/ctl` command the hive refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The write's error.
    pub error: FsError,
    /// What the hive left for the fid to read (`{"refused":…,"bridge":…}`).
    pub reply: String,
}

/// One `/queen/ctl` command's outcome and times.
#[derive(Debug, Clone, PartialEq)]
pub struct CtlReply {
    /// The `Twrite` alone: the command run by the hive, including its
    /// round trip to a bridge.
    pub write: Duration,
    /// The whole exchange: walk, open, write, read of the reply, clunk.
    pub exchange: Duration,
    /// The reply's JSON, or the refusal.
    pub result: Result<Value, Refusal>,
}

/// The Queen's attached session.
#[derive(Debug)]
pub struct Queen {
    conn: Connection,
    root: Fid,
    timeout: Duration,
}

impl Queen {
    /// Connects to NineDoor at `addr` and attaches with the Queen's ticket.
    pub async fn attach(
        addr: SocketAddr,
        ticket: &str,
        timeout: Duration,
    ) -> Result<Queen, ScaleError> {
        let conn = within(timeout, "connect", connect_tcp(addr, MSIZE)).await?;
        let root = within(timeout, "attach", conn.attach("queen", ticket)).await?;
        Ok(Queen {
            conn,
            root,
            timeout,
        })
    }

    /// Runs one command through `/queen/ctl` and times it.
    pub async fn ctl(&self, command: &Command) -> Result<CtlReply, ScaleError> {
        let mut line = serde_json::to_vec(command)
            .map_err(|e| ScaleError::Queen(format!("command not encodable: {e}")))?;
        line.push(b'\n');
        let start = Instant::now();
        let fid = self.call("walk /queen/ctl", self.conn.walk(self.root, "queen/ctl"));
        let fid = fid.await?;
        let opened = self.call("open /queen/ctl", self.conn.lopen(fid, LOpenFlags::RDWR));
        if let Err(e) = opened.await {
            let _ = self.call("clunk", self.conn.clunk(fid)).await;
            return Err(e);
        }
        let wrote = Instant::now();
        let written = tokio::time::timeout(self.timeout, self.conn.write(fid, 0, &line))
            .await
            .map_err(|_| timed_out("write /queen/ctl", self.timeout))?;
        let write = wrote.elapsed();
        let reply = self.call("read the reply", self.conn.read_to_end(fid, 0));
        let reply = reply.await;
        let clunked = self.call("clunk", self.conn.clunk(fid)).await;
        let exchange = start.elapsed();
        // A refused write still leaves its reply; a read that fails after
        // it loses only the reason.
        let reply = match (&written, reply) {
            (Err(CallError::Fs(_)), r) => r.unwrap_or_default(),
            (_, r) => r?,
        };
        clunked?;
        let result = match written {
            Ok(_) => Ok(serde_json::from_slice(&reply)
                .map_err(|e| ScaleError::Queen(format!("the reply is not JSON: {e}")))?),
            Err(CallError::Fs(error)) => Err(Refusal {
                error,
                reply: String::from_utf8_lossy(&reply).trim().to_owned(),
            }),
            Err(e) => return Err(ScaleError::Queen(format!("write /queen/ctl: {e}"))),
        };
        Ok(CtlReply {
            write,
            exchange,
            result,
        })
    }

    /// The names under `/gpu`, as NineDoor lists them.
    pub async fn gpus(&self) -> Result<Vec<String>, ScaleError> {
        let fid = self
            .call("walk /gpu", self.conn.walk(self.root, "gpu"))
            .await?;
        let listed = async {
            self.call("open /gpu", self.conn.lopen(fid, LOpenFlags::empty()))
                .await?;
            self.call("read /gpu", self.conn.readdir(fid)).await
        }
        .await;
        let _ = self.call("clunk", self.conn.clunk(fid)).await;
        Ok(listed?.into_iter().map(|(name, _)| name).collect())
    }

    /// A file's whole text.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, ScaleError> {
        let fid = self.call("walk", self.conn.walk(self.root, path)).await?;
        let read = async {
            self.call("open", self.conn.lopen(fid, LOpenFlags::empty()))
                .await?;
            self.call("read", self.conn.read_to_end(fid, 0)).await
        }
        .await;
        let _ = self.call("clunk", self.conn.clunk(fid)).await;
        read
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, ScaleError> {
        within(self.timeout, what, call).await
    }
}

fn timed_out(what: &str, after: Duration) -> ScaleError {
    ScaleError::Timeout {
        what: what.to_owned(),
        after,
    }
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, ScaleError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ScaleError::Queen(format!("{what}: {e}"))),
        Err(_) => Err(timed_out(what, timeout)),
    }
}
