//! A 9P client session against a `Hive`, in memory: frames in, frames out.
#![allow(dead_code)]

use ninedoor::secure9p_core::codec::{
    Dialect, DirEntries, Fid, LOpenFlags, Msg, Tag, Tattach, Tclunk, Tlopen, Tread, Treaddir,
    Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, Completion, FsError, SessionId, Token};
use ninedoor::{GpuRequest, Handled, Hive, HiveConfig};

/// The time every test starts at.
pub const NOW: u64 = 1_700_000_000;
/// The hive's key.
pub const KEY: [u8; 32] = [0x5a; 32];

/// Ticket ids drawn from a counter (never zero).
fn counted_ids() -> impl FnMut() -> [u8; 32] + Send + 'static {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut id = [0xa5u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id
    }
}

/// A hive with `config`, its ticket ids drawn from a counter.
pub fn hive_with(config: HiveConfig) -> Hive {
    Hive::new(config, KEY, counted_ids(), NOW).expect("hive")
}

/// A hive that keeps a journal (as one with a state directory), started
/// from nothing stored.
pub fn journaled_hive() -> Hive {
    Hive::restore(
        HiveConfig::default(),
        KEY,
        counted_ids(),
        NOW,
        ninedoor::Restored::default(),
    )
    .expect("hive")
}

/// A hive with the default configuration.
pub fn hive() -> Hive {
    hive_with(HiveConfig::default())
}

/// One client session.
pub struct Conn {
    pub client: Client,
    pub session: SessionId,
    pub now: u64,
    /// The tag of the last request sent.
    pub last_tag: Tag,
    req: Vec<u8>,
    pub rep: Vec<u8>,
}

impl Conn {
    /// Opens a session and negotiates 9P2000.L.
    pub fn open(hive: &mut Hive) -> Conn {
        let session = hive.open_session();
        let mut c = Conn {
            client: Client::new(64 * 1024),
            session,
            now: NOW,
            last_tag: Tag::NOTAG,
            req: Vec::new(),
            rep: Vec::new(),
        };
        c.client.version(Dialect::Linux, &mut c.req).unwrap();
        assert_eq!(c.send_raw(hive), Handled::Replied);
        c.client.receive(&c.rep).unwrap();
        c
    }

    fn send_raw(&mut self, hive: &mut Hive) -> Handled {
        self.rep.clear();
        let handled = hive
            .handle(self.session, &self.req, self.now, &mut self.rep)
            .expect("session alive");
        self.req.clear();
        handled
    }

    /// Sends one request; the reply (if any) is in `self.rep`.
    pub fn send<'m>(&mut self, hive: &mut Hive, msg: impl Into<Msg<'m>>) -> Handled {
        self.last_tag = self.client.request(msg, &mut self.req).unwrap();
        self.send_raw(hive)
    }

    /// Flushes `oldtag`; returns once the `Rflush` is in.
    pub fn flush(&mut self, hive: &mut Hive, oldtag: Tag) {
        self.client.flush(oldtag, &mut self.req).unwrap();
        assert_eq!(self.send_raw(hive), Handled::Replied);
        self.finish(|m| assert!(matches!(m, Msg::Rflush(_)), "{m:?}"))
            .unwrap();
    }

    /// Decodes the reply in `self.rep`.
    pub fn finish<T>(&mut self, f: impl FnOnce(Msg<'_>) -> T) -> Result<T, FsError> {
        let reply = self.client.receive(&self.rep).expect("a reply");
        reply.into_result().map(f)
    }

    /// Finishes a forwarded request with `result` and decodes the reply.
    pub fn complete<T>(
        &mut self,
        hive: &mut Hive,
        token: Token,
        result: Completion,
        f: impl FnOnce(Msg<'_>) -> T,
    ) -> Result<T, FsError> {
        self.rep.clear();
        let sid = hive.complete(token, result, self.now, &mut self.rep);
        assert_eq!(sid, Some(self.session));
        self.finish(f)
    }

    /// One request answered at once.
    pub fn rpc<'m, T>(
        &mut self,
        hive: &mut Hive,
        msg: impl Into<Msg<'m>>,
        f: impl FnOnce(Msg<'_>) -> T,
    ) -> Result<T, FsError> {
        assert_eq!(self.send(hive, msg), Handled::Replied);
        self.finish(f)
    }

    /// Attaches with `aname` (a ticket).
    pub fn attach(&mut self, hive: &mut Hive, aname: &str) -> Result<Fid, FsError> {
        let fid = self.client.alloc_fid();
        let r = self.rpc(
            hive,
            Tattach {
                fid,
                afid: Fid::NOFID,
                uname: "test",
                aname,
                n_uname: Some(0),
            },
            |_| fid,
        );
        if r.is_err() {
            self.client.free_fid(fid);
        }
        r
    }

    /// Walks from `from` to `path`, one element at a time so that the error
    /// of the failing element comes back.
    pub fn walk(&mut self, hive: &mut Hive, from: Fid, path: &str) -> Result<Fid, FsError> {
        let fid = self.client.alloc_fid();
        let none: [&str; 0] = [];
        let cloned = self.rpc(
            hive,
            Twalk {
                fid: from,
                newfid: fid,
                wnames: WalkNames::new(&none).unwrap(),
            },
            |_| (),
        );
        if let Err(e) = cloned {
            self.client.free_fid(fid);
            return Err(e);
        }
        for name in path.split('/').filter(|s| !s.is_empty()) {
            let step = self.rpc(
                hive,
                Twalk {
                    fid,
                    newfid: fid,
                    wnames: WalkNames::new(&[name]).unwrap(),
                },
                |_| (),
            );
            if let Err(e) = step {
                self.clunk(hive, fid);
                return Err(e);
            }
        }
        Ok(fid)
    }

    /// Opens `fid` with `flags`.
    pub fn lopen(&mut self, hive: &mut Hive, fid: Fid, flags: LOpenFlags) -> Result<(), FsError> {
        self.rpc(hive, Tlopen { fid, flags }, |_| ())
    }

    /// Walks to `path` and opens it; the fid is clunked if the open fails.
    pub fn open_path(
        &mut self,
        hive: &mut Hive,
        root: Fid,
        path: &str,
        flags: LOpenFlags,
    ) -> Result<Fid, FsError> {
        let fid = self.walk(hive, root, path)?;
        if let Err(e) = self.lopen(hive, fid, flags) {
            self.clunk(hive, fid);
            return Err(e);
        }
        Ok(fid)
    }

    /// One read.
    pub fn read(
        &mut self,
        hive: &mut Hive,
        fid: Fid,
        offset: u64,
        count: u32,
    ) -> Result<Vec<u8>, FsError> {
        self.rpc(hive, Tread { fid, offset, count }, |m| match m {
            Msg::Rread(r) => r.data.to_vec(),
            other => panic!("not an Rread: {other:?}"),
        })
    }

    /// Reads from offset 0 until a read returns nothing.
    pub fn read_all(&mut self, hive: &mut Hive, fid: Fid) -> Result<Vec<u8>, FsError> {
        let mut all = Vec::new();
        loop {
            let chunk = self.read(hive, fid, all.len() as u64, 4096)?;
            if chunk.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&chunk);
        }
    }

    /// One write.
    pub fn write(&mut self, hive: &mut Hive, fid: Fid, data: &[u8]) -> Result<u32, FsError> {
        self.rpc(
            hive,
            Twrite {
                fid,
                offset: 0,
                data,
            },
            |m| match m {
                Msg::Rwrite(r) => r.count,
                other => panic!("not an Rwrite: {other:?}"),
            },
        )
    }

    /// Clunks `fid` (whatever the answer) and frees its number.
    pub fn clunk(&mut self, hive: &mut Hive, fid: Fid) {
        let _ = self.rpc(hive, Tclunk { fid }, |_| ());
        self.client.free_fid(fid);
    }

    /// The names in directory `path` (without `.` and `..`).
    pub fn list(&mut self, hive: &mut Hive, root: Fid, path: &str) -> Result<Vec<String>, FsError> {
        let fid = self.open_path(hive, root, path, LOpenFlags::DIRECTORY)?;
        let names = self.rpc(
            hive,
            Treaddir {
                fid,
                offset: 0,
                count: 8192,
            },
            |m| match m {
                Msg::Rreaddir(r) => DirEntries::new(r.data)
                    .map(|e| e.unwrap().name.to_string())
                    .filter(|n| n != "." && n != "..")
                    .collect::<Vec<_>>(),
                other => panic!("not an Rreaddir: {other:?}"),
            },
        );
        self.clunk(hive, fid);
        names
    }

    /// Reads a whole file by path.
    pub fn cat(&mut self, hive: &mut Hive, root: Fid, path: &str) -> Result<Vec<u8>, FsError> {
        let fid = self.open_path(hive, root, path, LOpenFlags::empty())?;
        let data = self.read_all(hive, fid);
        self.clunk(hive, fid);
        data
    }
}

/// The Queen, attached, with `/queen/ctl` open read-write.
pub struct Queen {
    pub conn: Conn,
    pub root: Fid,
    pub ctl: Fid,
}

impl Queen {
    /// Attaches with the hive's Queen ticket and opens `/queen/ctl`.
    pub fn attach(hive: &mut Hive) -> Queen {
        let mut conn = Conn::open(hive);
        let ticket = hive.queen_ticket().to_owned();
        let root = conn.attach(hive, &ticket).expect("queen attach");
        let ctl = conn
            .open_path(hive, root, "/queen/ctl", LOpenFlags::RDWR)
            .expect("queen ctl");
        Queen { conn, root, ctl }
    }

    /// Writes one command; on success returns the reply read back.
    pub fn command(&mut self, hive: &mut Hive, line: &str) -> Result<String, FsError> {
        self.conn.write(hive, self.ctl, line.as_bytes())?;
        let reply = self.conn.read_all(hive, self.ctl).expect("ctl reply");
        Ok(String::from_utf8(reply).expect("utf-8 reply"))
    }

    /// Writes one command that runs on a bridge: the request the hive
    /// forwards for it.
    pub fn forwarded(&mut self, hive: &mut Hive, line: &str) -> GpuRequest {
        match self.conn.send(
            hive,
            Twrite {
                fid: self.ctl,
                offset: 0,
                data: line.as_bytes(),
            },
        ) {
            Handled::Forward(req) => req,
            Handled::Replied => panic!("answered at once: {:?}", self.conn.finish(|_| ())),
        }
    }

    /// Spawns a heartbeat worker; returns its ticket.
    pub fn spawn(&mut self, hive: &mut Hive, id: &str) -> String {
        let reply = self
            .command(
                hive,
                &format!(r#"{{"cmd":"spawn","role":"heartbeat","id":"{id}"}}"#),
            )
            .expect("spawn");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("json reply");
        assert_eq!(v["spawned"], id);
        v["ticket"].as_str().expect("ticket").to_owned()
    }

    /// The whole audit log, read through 9P.
    pub fn log(&mut self, hive: &mut Hive) -> String {
        let bytes = self
            .conn
            .cat(hive, self.root, "/log/queen.log")
            .expect("log");
        String::from_utf8(bytes).expect("utf-8 log")
    }
}

/// A worker attached with `ticket`.
pub fn worker(hive: &mut Hive, ticket: &str) -> (Conn, Fid) {
    let mut conn = Conn::open(hive);
    let root = conn.attach(hive, ticket).expect("worker attach");
    (conn, root)
}
