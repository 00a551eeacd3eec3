//! Shared helpers: a bridge on mock GPUs with a manual clock, actors, job
//! builders, and a 9P client driving a `secure9p_core::Server` in memory.
#![allow(dead_code)]

use gpu_bridge::{Actor, GpuBridge, JobDescriptor, ManualClock, MockSource, StatusLine, Workload};
use secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tclunk, Tlopen, Tread, Twalk, Twrite, WalkNames,
};
use secure9p_core::{Client, FsError, Role, Server, SessionId};
use std::sync::Arc;

/// The clock's start: an arbitrary wall-clock time, ms.
pub const T0: u64 = 1_700_000_000_000;

pub fn bridge(gpus: usize) -> (GpuBridge, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let bridge = GpuBridge::new(Box::new(MockSource::new(gpus).unwrap()), clock.clone());
    (bridge, clock)
}

pub fn queen() -> Actor {
    Actor::local(Role::Queen, "queen")
}

pub fn worker(name: &str) -> Actor {
    Actor::local(Role::WorkerGpu, name)
}

pub fn vadd_workload() -> Workload {
    Workload::Vadd {
        a: vec![1.0, 2.0, 3.0, 4.5],
        b: vec![10.0, 20.0, 30.0, -4.5],
    }
}

pub fn vadd_job(id: &str) -> JobDescriptor {
    JobDescriptor::inline(id, &vadd_workload())
}

pub fn lease(bridge: &GpuBridge, spec: &str) -> String {
    bridge
        .control("0", format!("LEASE {spec}").as_bytes(), &queen())
        .unwrap()
}

pub fn status(bridge: &GpuBridge) -> Vec<StatusLine> {
    bridge
        .status_text("0")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// `(state, job_id)` of each status line, for compact assertions.
pub fn states(bridge: &GpuBridge) -> Vec<(String, String)> {
    status(bridge)
        .iter()
        .map(|l| match l {
            StatusLine::Err { reason, job_id, .. } => (format!("ERR {reason}"), job_id.clone()),
            other => (other.state().to_string(), other.job_id().to_string()),
        })
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A 9P client session against a server, in memory.
pub struct Session {
    pub server: Server,
    pub session: SessionId,
    pub client: Client,
    pub root: Fid,
    req: Vec<u8>,
    rep: Vec<u8>,
}

impl Session {
    /// Negotiates a version and attaches with `aname` (a ticket, or "").
    pub fn attach(mut server: Server, uname: &str, aname: &str) -> Result<Session, FsError> {
        let session = server.open_session();
        let mut s = Session {
            server,
            session,
            client: Client::new(1 << 20),
            root: Fid(0),
            req: Vec::new(),
            rep: Vec::new(),
        };
        s.client.version(Dialect::Linux, &mut s.req).unwrap();
        s.roundtrip();
        s.client.receive(&s.rep).unwrap();
        let root = s.client.alloc_fid();
        s.call(Msg::from(Tattach {
            fid: root,
            afid: Fid::NOFID,
            uname,
            aname,
            n_uname: Some(0),
        }))?;
        s.root = root;
        Ok(s)
    }

    fn roundtrip(&mut self) {
        self.rep.clear();
        self.server
            .handle(self.session, &self.req, 0, &mut self.rep)
            .unwrap();
        self.req.clear();
    }

    /// Sends one request; returns the reply's data for `Rread`, the count
    /// for `Rwrite`, nothing otherwise.
    fn call(&mut self, msg: Msg<'_>) -> Result<Vec<u8>, FsError> {
        self.client.request(msg, &mut self.req).unwrap();
        self.roundtrip();
        match self.client.receive(&self.rep).unwrap().into_result()? {
            Msg::Rread(r) => Ok(r.data.to_vec()),
            Msg::Rwrite(w) => Ok(w.count.to_le_bytes().to_vec()),
            _ => Ok(Vec::new()),
        }
    }

    /// Walks to `path` (relative to the attach root) and opens it.
    pub fn open(&mut self, path: &str, flags: LOpenFlags) -> Result<Fid, FsError> {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // One name per walk, so a refusal comes back as its errno rather
        // than as a partial walk.
        let fid = self.client.alloc_fid();
        self.call(Msg::from(Twalk {
            fid: self.root,
            newfid: fid,
            wnames: WalkNames::new(&[]).unwrap(),
        }))?;
        let opened = names
            .iter()
            .try_for_each(|name| {
                self.call(Msg::from(Twalk {
                    fid,
                    newfid: fid,
                    wnames: WalkNames::new(&[name]).unwrap(),
                }))
                .map(drop)
            })
            .and_then(|()| self.call(Msg::from(Tlopen { fid, flags })).map(drop));
        if let Err(e) = opened {
            self.clunk(fid);
            return Err(e);
        }
        Ok(fid)
    }

    pub fn write(&mut self, fid: Fid, data: &[u8]) -> Result<u32, FsError> {
        let r = self.call(Msg::from(Twrite {
            fid,
            offset: 0,
            data,
        }))?;
        Ok(u32::from_le_bytes(r.try_into().unwrap()))
    }

    /// Reads from `offset` until a read returns nothing.
    pub fn read_from(&mut self, fid: Fid, mut offset: u64) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        loop {
            let chunk = self.call(Msg::from(Tread {
                fid,
                offset,
                count: 8192,
            }))?;
            if chunk.is_empty() {
                return Ok(out);
            }
            offset += chunk.len() as u64;
            out.extend_from_slice(&chunk);
        }
    }

    pub fn read_all(&mut self, fid: Fid) -> Result<String, FsError> {
        self.read_from(fid, 0)
            .map(|b| String::from_utf8(b).unwrap())
    }

    pub fn clunk(&mut self, fid: Fid) {
        self.call(Msg::from(Tclunk { fid })).unwrap();
        self.client.free_fid(fid);
    }

    /// Opens `path` for writing, writes `data` once, and returns the write's
    /// outcome and what the same fid reads afterwards (the reply line).
    pub fn write_file(&mut self, path: &str, data: &[u8]) -> (Result<u32, FsError>, String) {
        let fid = self.open(path, LOpenFlags::RDWR).unwrap();
        let result = self.write(fid, data);
        let reply = self.read_all(fid).unwrap();
        self.clunk(fid);
        (result, reply)
    }

    /// Opens `path` for reading and reads it whole.
    pub fn cat(&mut self, path: &str) -> Result<String, FsError> {
        let fid = self.open(path, LOpenFlags::empty())?;
        let text = self.read_all(fid);
        self.clunk(fid);
        text
    }
}
