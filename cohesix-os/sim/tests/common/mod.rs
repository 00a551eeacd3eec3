//! What the simulator's hive tests share: a 9P session from the host
//! through a host-facing PD, and the booted hive.

#![allow(dead_code)]

use cohesix_pds::mux::ConnId;
use cohesix_pds::wiring::MSIZE;
use cohesix_sim::hive::{HiveSim, HostLink};
use ninedoor::secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tclunk, Tlopen, Tread, Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, FsError};

pub const SEED: [u8; 64] = [0x42; 64];

/// A 9P session from the host, through the device PD.
pub struct Host {
    pub client: Client,
    pub req: Vec<u8>,
    pub via: HostLink,
    pub conn: ConnId,
}

impl Host {
    pub fn connect(hive: &mut HiveSim) -> Host {
        Host::connect_via(hive, HostLink::Console)
    }

    pub fn connect_via(hive: &mut HiveSim, via: HostLink) -> Host {
        let conn = match via {
            HostLink::Console => hive.host.current(),
            HostLink::Net => hive.net.current(),
        };
        Host::connect_on(hive, via, conn)
    }

    pub fn connect_on(hive: &mut HiveSim, via: HostLink, conn: ConnId) -> Host {
        let mut h = Host {
            client: Client::new(MSIZE),
            req: Vec::new(),
            via,
            conn,
        };
        h.client.version(Dialect::Linux, &mut h.req).unwrap();
        let rep = hive
            .exchange_on(via, conn, &std::mem::take(&mut h.req))
            .unwrap();
        h.client.receive(&rep).expect("Rversion");
        assert_eq!(h.client.msize(), MSIZE);
        h
    }

    /// One request; the reply's message mapped by `f`, or its error.
    pub fn rpc<'m, T>(
        &mut self,
        hive: &mut HiveSim,
        msg: impl Into<Msg<'m>>,
        f: impl FnOnce(Msg<'_>) -> T,
    ) -> Result<T, FsError> {
        self.client.request(msg, &mut self.req).unwrap();
        let rep = hive
            .exchange_on(self.via, self.conn, &std::mem::take(&mut self.req))
            .unwrap();
        assert!(!rep.is_empty(), "no reply came back through the host PD");
        let reply = self.client.receive(&rep).expect("a reply frame");
        reply.into_result().map(f)
    }

    pub fn attach(
        &mut self,
        hive: &mut HiveSim,
        uname: &str,
        ticket: &str,
    ) -> Result<Fid, FsError> {
        let fid = self.client.alloc_fid();
        self.rpc(
            hive,
            Tattach {
                fid,
                afid: Fid::NOFID,
                uname,
                aname: ticket,
                n_uname: Some(0),
            },
            |_| fid,
        )
    }

    /// Walks one element at a time, so the failing element's error comes back.
    pub fn walk(&mut self, hive: &mut HiveSim, root: Fid, path: &str) -> Result<Fid, FsError> {
        let fid = self.client.alloc_fid();
        let none: [&str; 0] = [];
        self.rpc(
            hive,
            Twalk {
                fid: root,
                newfid: fid,
                wnames: WalkNames::new(&none).unwrap(),
            },
            |_| (),
        )?;
        for name in path.split('/').filter(|s| !s.is_empty()) {
            let names = [name];
            let walked = self.rpc(
                hive,
                Twalk {
                    fid,
                    newfid: fid,
                    wnames: WalkNames::new(&names).unwrap(),
                },
                |m| matches!(m, Msg::Rwalk(w) if w.wqids.len() == 1),
            )?;
            if !walked {
                return Err(FsError::NotFound);
            }
        }
        Ok(fid)
    }

    pub fn read_all(
        &mut self,
        hive: &mut HiveSim,
        root: Fid,
        path: &str,
    ) -> Result<String, FsError> {
        let fid = self.walk(hive, root, path)?;
        self.rpc(
            hive,
            Tlopen {
                fid,
                flags: LOpenFlags::empty(),
            },
            |_| (),
        )?;
        let mut text = Vec::new();
        loop {
            let chunk = self.rpc(
                hive,
                Tread {
                    fid,
                    offset: text.len() as u64,
                    count: MSIZE - 64,
                },
                |m| match m {
                    Msg::Rread(r) => r.data.to_vec(),
                    other => panic!("not an Rread: {other:?}"),
                },
            )?;
            if chunk.is_empty() {
                break;
            }
            text.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8(text).expect("utf-8"))
    }

    /// Writes `data` to `path` (opened write-only) and, for a control file,
    /// reads back its reply; `Err` carries the write's error.
    pub fn ctl(&mut self, hive: &mut HiveSim, root: Fid, line: &str) -> Result<String, FsError> {
        let fid = self.walk(hive, root, "/queen/ctl")?;
        self.rpc(
            hive,
            Tlopen {
                fid,
                flags: LOpenFlags::RDWR,
            },
            |_| (),
        )?;
        let written = self.rpc(
            hive,
            Twrite {
                fid,
                offset: 0,
                data: line.as_bytes(),
            },
            |_| (),
        );
        let reply = written.and_then(|()| {
            self.rpc(
                hive,
                Tread {
                    fid,
                    offset: 0,
                    count: MSIZE - 64,
                },
                |m| match m {
                    Msg::Rread(r) => String::from_utf8_lossy(r.data).into_owned(),
                    other => panic!("not an Rread: {other:?}"),
                },
            )
        });
        self.rpc(hive, Tclunk { fid }, |_| ()).expect("clunk");
        reply
    }
}

pub fn booted() -> HiveSim {
    let hive = HiveSim::boot(SEED).expect("hive boots");
    assert!(
        hive.sim.refusals().is_empty(),
        "channel operations refused: {:?}",
        hive.sim.refusals()
    );
    hive
}
