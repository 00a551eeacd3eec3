//! The sans-IO client engine: builds requests, allocates tags and fids, and
//! matches replies to the requests they answer. `cohsh`, NineDoor's bridge
//! forwarding, the transport's `connect`, the tests and the load generator
//! all drive it.

use crate::error::FsError;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use secure9p_codec::{
    self as codec, CodecError, DecodeConfig, Dialect, Fid, Frame, Msg, MsgType, Tag,
};

/// Why the client engine refused a request or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A frame could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// A reply carries a tag with no request in flight.
    #[error("reply with unknown tag {0:?}")]
    UnknownTag(Tag),
    /// A reply of the wrong type for its request.
    #[error("{reply:?} does not answer {request:?}")]
    UnexpectedReply {
        /// The request sent under that tag.
        request: MsgType,
        /// The reply received.
        reply: MsgType,
    },
    /// Every tag is in flight.
    #[error("no free tag")]
    TagsExhausted,
    /// A reply message was given where a request was expected.
    #[error("{0:?} is not a request")]
    NotARequest(MsgType),
    /// The request is larger than the session's msize.
    #[error("request of {size} bytes exceeds msize {msize}")]
    TooLarge {
        /// The request's size.
        size: usize,
        /// The msize.
        msize: u32,
    },
    /// The server answered `Rversion` with a version we cannot speak.
    #[error("server does not speak our version")]
    VersionRefused,
}

/// A reply matched to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The tag.
    pub tag: Tag,
    /// The type of the request it answers.
    pub request: MsgType,
    /// The reply.
    pub msg: Msg<'a>,
}

impl<'a> Reply<'a> {
    /// The reply, or the error it carries (`Rlerror`/`Rerror`).
    pub fn into_result(self) -> Result<Msg<'a>, FsError> {
        match self.msg {
            Msg::Rlerror(e) => Err(FsError::from_errno(e.ecode)),
            Msg::Rerror(e) => Err(FsError::from_message(e.ename)),
            m => Ok(m),
        }
    }
}

/// The client side of one session.
#[derive(Debug, Clone)]
pub struct Client {
    dialect: Dialect,
    msize: u32,
    in_flight: BTreeMap<Tag, MsgType>,
    /// Tflush tag → the tag it flushes.
    flushing: BTreeMap<Tag, Tag>,
    next_tag: u16,
    fids: BTreeSet<Fid>,
    next_fid: u32,
}

impl Client {
    /// A client that will propose `msize` and 9P2000.L.
    pub fn new(msize: u32) -> Self {
        Client {
            dialect: Dialect::Linux,
            msize,
            in_flight: BTreeMap::new(),
            flushing: BTreeMap::new(),
            next_tag: 0,
            fids: BTreeSet::new(),
            next_fid: 0,
        }
    }

    /// The session's msize (the proposal until `Rversion` arrives).
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// The session's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// How replies of this session are decoded.
    pub fn decode_config(&self) -> DecodeConfig {
        DecodeConfig::new(self.dialect, self.msize)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Appends a `Tversion` for `dialect` to `out`.
    pub fn version(&mut self, dialect: Dialect, out: &mut Vec<u8>) -> Result<Tag, ClientError> {
        self.dialect = dialect;
        let msg = Msg::Tversion(codec::Tversion {
            msize: self.msize,
            version: dialect.version(),
        });
        self.send(Tag::NOTAG, msg, out)?;
        Ok(Tag::NOTAG)
    }

    /// A fresh fid number (never one in use).
    pub fn alloc_fid(&mut self) -> Fid {
        loop {
            let fid = Fid(self.next_fid);
            self.next_fid = self.next_fid.wrapping_add(1);
            if fid != Fid::NOFID && !self.fids.contains(&fid) {
                self.fids.insert(fid);
                return fid;
            }
        }
    }

    /// Returns a fid number after its clunk (or failed walk).
    pub fn free_fid(&mut self, fid: Fid) {
        self.fids.remove(&fid);
    }

    fn alloc_tag(&mut self) -> Result<Tag, ClientError> {
        for _ in 0..=u16::MAX {
            let tag = Tag(self.next_tag);
            self.next_tag = self.next_tag.wrapping_add(1);
            if tag != Tag::NOTAG && !self.in_flight.contains_key(&tag) {
                return Ok(tag);
            }
        }
        Err(ClientError::TagsExhausted)
    }

    fn send(&mut self, tag: Tag, msg: Msg<'_>, out: &mut Vec<u8>) -> Result<(), ClientError> {
        let ty = msg.msg_type();
        if !ty.is_request() {
            return Err(ClientError::NotARequest(ty));
        }
        let frame = Frame { tag, msg };
        let size = frame.encoded_len();
        if size > self.msize as usize {
            return Err(ClientError::TooLarge {
                size,
                msize: self.msize,
            });
        }
        // Appends in place (each byte written once); on an error `out`
        // is left as it was.
        frame.encode_to(out)?;
        self.in_flight.insert(tag, ty);
        Ok(())
    }

    /// Appends a request under a fresh tag to `out`; returns the tag.
    pub fn request<'m>(
        &mut self,
        msg: impl Into<Msg<'m>>,
        out: &mut Vec<u8>,
    ) -> Result<Tag, ClientError> {
        let tag = self.alloc_tag()?;
        self.send(tag, msg.into(), out)?;
        Ok(tag)
    }

    /// Appends a `Tflush` of `oldtag`; once its `Rflush` arrives `oldtag` is
    /// free again, whether or not its own reply came.
    pub fn flush(&mut self, oldtag: Tag, out: &mut Vec<u8>) -> Result<Tag, ClientError> {
        let tag = self.request(codec::Tflush { oldtag }, out)?;
        self.flushing.insert(tag, oldtag);
        Ok(tag)
    }

    /// Matches one reply frame to its request.
    pub fn receive<'a>(&mut self, frame: &'a [u8]) -> Result<Reply<'a>, ClientError> {
        let f = Frame::decode(frame, self.decode_config())?;
        let reply = f.msg.msg_type();
        let request = *self
            .in_flight
            .get(&f.tag)
            .ok_or(ClientError::UnknownTag(f.tag))?;
        let ok =
            Some(reply) == request.reply() || matches!(reply, MsgType::Rlerror | MsgType::Rerror);
        if !ok {
            return Err(ClientError::UnexpectedReply { request, reply });
        }
        self.in_flight.remove(&f.tag);
        if let Some(old) = self.flushing.remove(&f.tag) {
            self.in_flight.remove(&old);
        }
        if let Msg::Rversion(v) = f.msg {
            match Dialect::from_version(v.version) {
                Some(d) if v.msize <= self.msize => {
                    self.dialect = d;
                    self.msize = v.msize;
                }
                _ => return Err(ClientError::VersionRefused),
            }
        }
        Ok(Reply {
            tag: f.tag,
            request,
            msg: f.msg,
        })
    }
}
