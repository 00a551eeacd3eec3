//! One connection of the load: set up once (version, attach, walk, open),
//! then kept `pipeline` requests deep until the deadline.
//!
//! It drives `secure9p-core`'s sans-IO [`Client`] straight over a TCP
//! stream from a single task, rather than through the transport's shared
//! `Connection`: the replies that arrive in one read are answered by their
//! replacement requests in one write, with no lock, channel hop or task
//! wake-up per request. On a machine the server shares, every cycle the
//! load generator saves is a cycle the server gets. Over TLS the same loop
//! runs on the rustls stream ([`Wire`]).

use crate::config::LoadConfig;
use crate::mix::{Op, Picker};
use crate::tally::Recorder;
use bytes::{Bytes, BytesMut};
use secure9p_core::codec::{
    self, Dialect, Fid, GetattrMask, IOHDRSZ, LOpenFlags, MAX_WALK_ELEMENTS, Msg, RREAD_HEADER_LEN,
    Tag, WalkNames,
};
use secure9p_core::{Client, ClientError, FsError};
use secure9p_transport::framing::{FrameError, NinePCodec};
use secure9p_transport::tls::ClientTlsStream;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// Bytes the read buffer keeps free before each read: several small replies
/// or a good slice of a large one per system call.
const READ_RESERVE: usize = 64 * 1024;

/// Why a connection failed. [`LoadError::kind`] is what the report counts.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The socket failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The byte stream broke 9P framing.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// The client engine refused a request or a reply.
    #[error("protocol: {0}")]
    Client(#[from] ClientError),
    /// The server answered a setup step with an error.
    #[error("{step}: errno {} ({err})", err.errno())]
    Fs {
        /// The step.
        step: &'static str,
        /// The server's error.
        err: FsError,
    },
    /// A setup reply of the wrong kind.
    #[error("{0}: unexpected reply")]
    Unexpected(&'static str),
    /// A walk reached only part of the path.
    #[error("walk {path:?}: only {walked} of {want} names exist")]
    PartialWalk {
        /// The path.
        path: String,
        /// Names walked.
        walked: usize,
        /// Names asked.
        want: usize,
    },
    /// The server closed the connection.
    #[error("{0}: connection closed by the server")]
    Closed(&'static str),
    /// No reply within the reply timeout.
    #[error("{step}: no reply within {secs} s")]
    Timeout {
        /// What was being waited for.
        step: &'static str,
        /// The timeout.
        secs: u64,
    },
}

impl LoadError {
    /// A short, stable label for counting errors by kind (no values that
    /// vary between connections, such as addresses or byte counts).
    pub fn kind(&self) -> String {
        match self {
            LoadError::Io { step, source } => format!("{step}: {:?}", source.kind()),
            LoadError::Frame(e) => match e {
                FrameError::TooLarge { .. } => "framing: reply above msize".into(),
                FrameError::Io(io) => format!("framing: {:?}", io.kind()),
                other => format!("framing: {other}"),
            },
            LoadError::Client(ClientError::UnknownTag(_)) => {
                "protocol: reply with unknown tag".into()
            }
            LoadError::Client(e) => format!("protocol: {e}"),
            LoadError::PartialWalk { .. } => "walk: file not found".into(),
            other => other.to_string(),
        }
    }
}

/// The files a session opened.
#[derive(Debug, Clone, Copy)]
struct Files {
    small: Option<Fid>,
    large: Option<(Fid, u64)>,
    /// What getattr asks: the small file, else the large one, else the root.
    stat: Fid,
}

/// The socket a session runs over: plain TCP, or mutual TLS over it.
#[derive(Debug)]
enum Wire {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream>),
}

impl Wire {
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.write_all(buf).await,
            // rustls may keep the last records of a write: flush sends them.
            Wire::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read_buf(buf).await,
            Wire::Tls(s) => s.read_buf(buf).await,
        }
    }
}

/// An established, attached session with its files open.
#[derive(Debug)]
pub struct Session {
    stream: Wire,
    client: Client,
    codec: NinePCodec,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    files: Files,
    small_count: u32,
    large_chunk: u32,
    reply_timeout: Duration,
}

/// A request in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: Tag,
    op: Op,
    sent: Instant,
}

impl Session {
    /// Connects, negotiates 9P2000.L, attaches and opens the files `cfg` reads.
    pub async fn establish(cfg: &LoadConfig) -> Result<Session, LoadError> {
        let timeout = cfg.reply_timeout;
        let connect = async {
            match &cfg.tls {
                Some((client, name)) => client
                    .connect_stream(cfg.addr, name)
                    .await
                    .map(|s| Wire::Tls(Box::new(s))),
                None => {
                    let s = TcpStream::connect(cfg.addr).await?;
                    s.set_nodelay(true)?;
                    Ok(Wire::Plain(s))
                }
            }
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| LoadError::Timeout {
                step: "connect",
                secs: timeout.as_secs(),
            })?
            .map_err(|source| LoadError::Io {
                step: "connect",
                source,
            })?;
        let mut s = Session {
            stream,
            client: Client::new(cfg.msize),
            codec: NinePCodec::new(cfg.msize),
            rbuf: BytesMut::with_capacity(READ_RESERVE),
            wbuf: Vec::new(),
            files: Files {
                small: None,
                large: None,
                stat: Fid::NOFID,
            },
            small_count: 0,
            large_chunk: 0,
            reply_timeout: timeout,
        };

        s.client.version(Dialect::Linux, &mut s.wbuf)?;
        let frame = s.rpc("version").await?;
        match s.client.receive(&frame)?.msg {
            Msg::Rversion(_) if s.client.dialect() == Dialect::Linux => {}
            _ => return Err(ClientError::VersionRefused.into()),
        }
        let msize = s.client.msize();
        s.codec.set_msize(msize);
        // A read may ask for up to msize − 11 (the Rread header), but the
        // Linux client asks for msize − IOHDRSZ (24) and diod answers EIO to
        // anything larger: default to what real clients send.
        let max_io = msize.saturating_sub(RREAD_HEADER_LEN as u32);
        s.small_count = cfg.small_read.min(max_io);
        s.large_chunk = cfg
            .large_chunk
            .unwrap_or(msize.saturating_sub(IOHDRSZ))
            .min(max_io);

        let root = s.client.alloc_fid();
        s.client.request(
            codec::Tattach {
                fid: root,
                afid: Fid::NOFID,
                uname: &cfg.uname,
                aname: &cfg.aname,
                n_uname: Some(cfg.n_uname),
            },
            &mut s.wbuf,
        )?;
        s.expect("attach", |m| matches!(m, Msg::Rattach(_))).await?;
        s.files.stat = root;

        if let Some(path) = cfg
            .large_file
            .as_deref()
            .filter(|_| cfg.mix.uses(Op::LargeRead))
        {
            let fid = s.open(root, path).await?;
            let size = s.size(fid).await?;
            s.files.large = Some((fid, size));
            s.files.stat = fid;
        }
        if let Some(path) = cfg
            .small_file
            .as_deref()
            .filter(|_| cfg.mix.uses(Op::SmallRead))
        {
            let fid = s.open(root, path).await?;
            s.files.small = Some(fid);
            s.files.stat = fid;
        }
        Ok(s)
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.client.msize()
    }

    /// Bytes asked by each large read.
    pub fn large_chunk(&self) -> u32 {
        self.large_chunk
    }

    /// Sends what is in the write buffer and returns the next frame.
    async fn rpc(&mut self, step: &'static str) -> Result<Bytes, LoadError> {
        self.flush(step).await?;
        loop {
            if let Some(frame) = self.codec.decode(&mut self.rbuf)? {
                return Ok(frame);
            }
            self.fill(step).await?;
        }
    }

    /// A setup round trip whose reply must satisfy `ok`.
    async fn expect(
        &mut self,
        step: &'static str,
        ok: impl Fn(&Msg<'_>) -> bool,
    ) -> Result<(), LoadError> {
        let frame = self.rpc(step).await?;
        let msg = self
            .client
            .receive(&frame)?
            .into_result()
            .map_err(|err| LoadError::Fs { step, err })?;
        if ok(&msg) {
            Ok(())
        } else {
            Err(LoadError::Unexpected(step))
        }
    }

    /// Walks from `root` to `path` (16 names per message) and opens it for reading.
    async fn open(&mut self, root: Fid, path: &str) -> Result<Fid, LoadError> {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        let fid = self.client.alloc_fid();
        let mut from = root;
        let mut chunks: Vec<&[&str]> = names.chunks(MAX_WALK_ELEMENTS).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            self.client.request(
                codec::Twalk {
                    fid: from,
                    newfid: fid,
                    wnames: WalkNames::new(chunk).map_err(ClientError::from)?,
                },
                &mut self.wbuf,
            )?;
            let frame = self.rpc("walk").await?;
            let walked = match self.client.receive(&frame)?.into_result() {
                Ok(Msg::Rwalk(w)) => w.wqids.len(),
                Ok(_) => return Err(LoadError::Unexpected("walk")),
                Err(err) => return Err(LoadError::Fs { step: "walk", err }),
            };
            if walked != chunk.len() {
                return Err(LoadError::PartialWalk {
                    path: path.to_string(),
                    walked,
                    want: chunk.len(),
                });
            }
            from = fid;
        }
        self.client.request(
            codec::Tlopen {
                fid,
                flags: LOpenFlags::empty(),
            },
            &mut self.wbuf,
        )?;
        self.expect("open", |m| matches!(m, Msg::Rlopen(_))).await?;
        Ok(fid)
    }

    /// The size of `fid`, from `Tgetattr`.
    async fn size(&mut self, fid: Fid) -> Result<u64, LoadError> {
        self.client.request(
            codec::Tgetattr {
                fid,
                request_mask: GetattrMask::BASIC,
            },
            &mut self.wbuf,
        )?;
        let frame = self.rpc("getattr").await?;
        match self.client.receive(&frame)?.into_result() {
            Ok(Msg::Rgetattr(a)) => Ok(a.size()),
            Ok(_) => Err(LoadError::Unexpected("getattr")),
            Err(err) => Err(LoadError::Fs {
                step: "getattr",
                err,
            }),
        }
    }

    async fn flush(&mut self, step: &'static str) -> Result<(), LoadError> {
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        r.map_err(|source| LoadError::Io { step, source })
    }

    /// Reads more bytes, within the reply timeout.
    async fn fill(&mut self, step: &'static str) -> Result<(), LoadError> {
        self.rbuf.reserve(READ_RESERVE);
        let n = tokio::time::timeout(self.reply_timeout, self.stream.read_buf(&mut self.rbuf))
            .await
            .map_err(|_| LoadError::Timeout {
                step,
                secs: self.reply_timeout.as_secs(),
            })?
            .map_err(|source| LoadError::Io { step, source })?;
        if n == 0 {
            return Err(LoadError::Closed(step));
        }
        Ok(())
    }

    /// Appends the next request of the mix to the write buffer.
    fn issue(
        &mut self,
        picker: &mut Picker,
        offset: &mut u64,
        now: Instant,
        in_flight: &mut Vec<InFlight>,
    ) -> Result<(), LoadError> {
        let op = picker.next().unwrap_or(Op::Getattr);
        let f = self.files;
        let tag = match (op, f.small, f.large) {
            (Op::SmallRead, Some(fid), _) => self.client.request(
                codec::Tread {
                    fid,
                    offset: 0,
                    count: self.small_count,
                },
                &mut self.wbuf,
            )?,
            (Op::LargeRead, _, Some((fid, size))) => {
                let at = *offset;
                *offset = at.saturating_add(u64::from(self.large_chunk));
                if *offset >= size {
                    *offset = 0;
                }
                self.client.request(
                    codec::Tread {
                        fid,
                        offset: at,
                        count: self.large_chunk,
                    },
                    &mut self.wbuf,
                )?
            }
            _ => self.client.request(
                codec::Tgetattr {
                    fid: f.stat,
                    request_mask: GetattrMask::BASIC,
                },
                &mut self.wbuf,
            )?,
        };
        in_flight.push(InFlight { tag, op, sent: now });
        Ok(())
    }

    /// Keeps `pipeline` requests in flight from `start` until `deadline`,
    /// then waits for the last replies. Records replies and their errors in
    /// shard `id` of `rec`; returns what broke the connection, if anything.
    pub async fn drive(
        mut self,
        id: usize,
        cfg: &LoadConfig,
        deadline: Instant,
        rec: &Recorder,
    ) -> Result<(), LoadError> {
        let mut picker = cfg.mix.picker();
        // Spread the connections over the large file so they do not all read
        // the same few chunks.
        let mut offset = match self.files.large {
            Some((_, size)) if size > 0 && self.large_chunk > 0 => {
                let chunks = size.div_ceil(u64::from(self.large_chunk));
                (id as u64 % chunks) * u64::from(self.large_chunk)
            }
            _ => 0,
        };
        let mut in_flight: Vec<InFlight> = Vec::with_capacity(cfg.pipeline);
        let mut done: Vec<(Op, Duration, u64, Option<FsError>)> = Vec::new();
        let now = Instant::now();
        for _ in 0..cfg.pipeline {
            self.issue(&mut picker, &mut offset, now, &mut in_flight)?;
        }
        self.flush("send").await?;
        while !in_flight.is_empty() {
            self.fill("reply").await?;
            let now = Instant::now();
            while let Some(frame) = self.codec.decode(&mut self.rbuf)? {
                let reply = self.client.receive(&frame)?;
                let Some(i) = in_flight.iter().position(|r| r.tag == reply.tag) else {
                    return Err(ClientError::UnknownTag(reply.tag).into());
                };
                let req = in_flight.swap_remove(i);
                let (bytes, err) = match reply.into_result() {
                    Ok(Msg::Rread(r)) => (r.data.len() as u64, None),
                    Ok(_) => (0, None),
                    Err(e) => (0, Some(e)),
                };
                done.push((req.op, now - req.sent, bytes, err));
            }
            if !done.is_empty() {
                let mut shard = rec.shard(id);
                for (op, latency, bytes, err) in done.drain(..) {
                    shard.reply(op, latency, bytes);
                    if let Some(e) = err {
                        shard.error(format!("{op}: errno {} ({e})", e.errno()));
                    }
                }
            }
            if now < deadline {
                while in_flight.len() < cfg.pipeline {
                    self.issue(&mut picker, &mut offset, now, &mut in_flight)?;
                }
                self.flush("send").await?;
            }
        }
        Ok(())
    }
}
