//! A sans-IO client for the tests: encodes one request, hands it to the
//! engine, decodes the reply. Replies are owned (`Reply`), so a test can
//! hold them across calls.

#![allow(dead_code)]

use secure9p_core::codec::{
    DecodeConfig, Dialect, Fid, Frame, LOpenFlags, Msg, Qid, Tag, Tattach, Tlopen, Tversion, Twalk,
    WalkNames,
};
use secure9p_core::{Filesystem, FsServer, ServerConfig, SessionId};

pub const MSIZE: u32 = 65536;

/// One reply frame.
pub struct Reply(pub Vec<u8>);

impl Reply {
    pub fn msg(&self) -> Msg<'_> {
        Frame::decode(&self.0, DecodeConfig::new(Dialect::Linux, MSIZE))
            .expect("reply decodes")
            .msg
    }
    /// The errno of an `Rlerror`, 0 for any other reply.
    pub fn errno(&self) -> u32 {
        match self.msg() {
            Msg::Rlerror(e) => e.ecode,
            _ => 0,
        }
    }
}

/// A server and one of its sessions.
pub struct Wire {
    pub server: FsServer,
    pub sid: SessionId,
    tag: u16,
}

impl Wire {
    pub fn new(fs: impl Filesystem + 'static) -> Wire {
        Wire::with_config(fs, ServerConfig::default())
    }

    pub fn with_config(fs: impl Filesystem + 'static, config: ServerConfig) -> Wire {
        let mut server = FsServer::new(fs, config);
        let sid = server.open_session();
        let mut w = Wire {
            server,
            sid,
            tag: 1,
        };
        w.version();
        w
    }

    /// A second session of the same server.
    pub fn session(&mut self) -> SessionId {
        let sid = self.server.open_session();
        let old = std::mem::replace(&mut self.sid, sid);
        self.version();
        std::mem::replace(&mut self.sid, old)
    }

    fn version(&mut self) {
        let r = self.call(Tversion {
            msize: MSIZE,
            version: "9P2000.L",
        });
        assert!(matches!(r.msg(), Msg::Rversion(v) if v.version == "9P2000.L"));
    }

    pub fn call<'m>(&mut self, msg: impl Into<Msg<'m>>) -> Reply {
        self.call_raw(&encode(self.tag, msg.into()))
    }

    pub fn call_raw(&mut self, frame: &[u8]) -> Reply {
        self.tag = self.tag.wrapping_add(1) % 60000;
        let mut out = Vec::new();
        self.server
            .handle(self.sid, frame, 1_700_000_000, &mut out)
            .expect("session stays up");
        Reply(out)
    }

    /// Calls and expects success.
    pub fn ok<'m>(&mut self, msg: impl Into<Msg<'m>>) -> Reply {
        let r = self.call(msg);
        assert_eq!(r.errno(), 0, "request failed");
        r
    }

    pub fn attach(&mut self, fid: u32, uid: u32) -> Qid {
        match self
            .ok(Tattach {
                fid: Fid(fid),
                afid: Fid::NOFID,
                uname: "u",
                aname: "",
                n_uname: Some(uid),
            })
            .msg()
        {
            Msg::Rattach(a) => a.qid,
            m => panic!("attach: {m:?}"),
        }
    }

    /// Walks `names` from `fid` to `newfid`; the errno, or the qids.
    pub fn walk(&mut self, fid: u32, newfid: u32, names: &[&str]) -> Result<Vec<Qid>, u32> {
        let wnames = WalkNames::new(names).expect("walk names");
        let r = self.call(Twalk {
            fid: Fid(fid),
            newfid: Fid(newfid),
            wnames,
        });
        match r.msg() {
            Msg::Rwalk(q) if q.wqids.len() == names.len() => Ok(q.wqids.iter().collect()),
            Msg::Rwalk(q) => Err(1000 + q.wqids.len() as u32),
            Msg::Rlerror(e) => Err(e.ecode),
            m => panic!("walk: {m:?}"),
        }
    }

    pub fn lopen(&mut self, fid: u32, flags: LOpenFlags) -> u32 {
        self.call(Tlopen {
            fid: Fid(fid),
            flags,
        })
        .errno()
    }
}

pub fn encode(tag: u16, msg: Msg<'_>) -> Vec<u8> {
    let frame = Frame { tag: Tag(tag), msg };
    let mut buf = vec![0; frame.encoded_len()];
    frame.encode(&mut buf).expect("encodes");
    buf
}
