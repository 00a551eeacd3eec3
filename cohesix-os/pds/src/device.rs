//! The host-facing PDs (the console's `device` and the network's `net`):
//! carry 9P between host connections and NineDoor. Bytes from each
//! connection of the [`HostPort`] (the virtio console's one stream, or TCP
//! connections, on hardware; pipes in the simulator) are cut into frames
//! and pushed into the ring to NineDoor, each behind its connection's id
//! ([`mux`](crate::mux)); replies come back the same way and are written to
//! their connection, or dropped if it has ended. When a connection ends the
//! PD drops its partial frame and tells NineDoor, which closes its session.
//! A frame size outside `7..=msize` means the stream cannot be
//! resynchronised (9P has no frame marker): the PD closes that connection
//! (and NineDoor its session) at once, and the host may connect afresh;
//! NineDoor may ask the same of a connection whose session lost framing.
//! It never interprets a frame beyond its size prefix, and it holds at most
//! one ring's worth of backlog before it stops reading the host (the host
//! then sees flow control, not loss).

use crate::bridge_ring::{self, CLOSE, CONNECT, DATA};
use crate::frames::FrameAssembler;
use crate::link::{Link, LinkError};
use crate::mux::{self, ConnId};
use crate::wiring::{self, MSIZE};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Context, Handler, Regions};
use core::ops::Bound;

/// Bytes read from the host per port call.
const CHUNK: usize = 512;

/// A host connection beginning or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortEvent {
    /// A connection began: its bytes are a new 9P stream.
    Opened(ConnId),
    /// A connection ended.
    Closed(ConnId),
}

/// The outbound bridge connection's state changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEvent {
    /// The connection asked for with [`HostPort::bridge_connect`] is up.
    Connected,
    /// It closed, or could not be made.
    Closed,
}

/// The host side of a host-facing PD: byte streams, one per connection,
/// polled. Every pump of the PD calls [`HostPort::event`] until it says
/// `None` before it reads or writes, so a port that must be polled (a
/// network stack) does its work there, once per pump.
pub trait HostPort {
    /// The next connection that began or ended since the last call.
    fn event(&mut self) -> Option<PortEvent>;
    /// Reads what has arrived on `conn` (at most `buf.len()` bytes)
    /// without waiting; 0 when nothing has.
    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> usize;
    /// Writes all of `data` to `conn` (nothing if it has ended).
    fn write(&mut self, conn: ConnId, data: &[u8]);
    /// Ends `conn` from this side (its framing is lost): the host sees the
    /// connection close, and no [`PortEvent::Closed`] need follow.
    fn close(&mut self, conn: ConnId);
    /// Called when the port's IRQ fires, before reading: acknowledge the
    /// device (the PD then acknowledges the IRQ with the kernel).
    fn interrupt(&mut self) {}
    /// A line for the console about trouble the port saw since the last
    /// call (receive overruns, a full transmit queue), if any.
    fn report(&mut self) -> Option<String> {
        None
    }
    /// Starts the one outbound connection to the GPU bridge (closing any
    /// there is); `false` if this port makes none (the console).
    fn bridge_connect(&mut self) -> bool {
        false
    }
    /// The bridge connection's next state change since the last call.
    fn bridge_event(&mut self) -> Option<BridgeEvent> {
        None
    }
    /// Reads what the bridge sent (at most `buf.len()` bytes); 0 if nothing.
    fn bridge_read(&mut self, buf: &mut [u8]) -> usize {
        let _ = buf;
        0
    }
    /// Sends all of `data` to the bridge (nothing if not connected).
    fn bridge_write(&mut self, data: &[u8]) {
        let _ = data;
    }
    /// Closes the bridge connection.
    fn bridge_close(&mut self) {}
}

/// The host-facing protection domain.
pub struct DevicePd<P: HostPort> {
    port: P,
    link: Link,
    /// The ring pair to NineDoor's bridge link (the network PD only).
    bridge: Option<Link>,
    /// Each open connection's partial frame.
    conns: BTreeMap<ConnId, FrameAssembler>,
    frame: Vec<u8>,
    entry: Vec<u8>,
    chunk: [u8; CHUNK],
    dropped: u64,
}

impl<P: HostPort> core::fmt::Debug for DevicePd<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DevicePd")
            .field("link", &self.link)
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl<P: HostPort> DevicePd<P> {
    /// The PD over `port` and the regions the `.system` file maps into it.
    pub fn new(port: P, regions: &dyn Regions) -> Result<DevicePd<P>, LinkError> {
        // Only the network PD maps the bridge ring pair.
        let bridge = Link::optional(regions, wiring::device::BRIDGE)?;
        Ok(DevicePd {
            port,
            link: Link::mapped(regions, wiring::device::NINEDOOR)?,
            bridge,
            conns: BTreeMap::new(),
            frame: Vec::new(),
            entry: Vec::new(),
            chunk: [0; CHUNK],
            dropped: 0,
        })
    }

    /// Host connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Replies dropped because the connection they answered had ended.
    pub fn stale_replies_dropped(&self) -> u64 {
        self.dropped
    }

    fn send(&mut self, conn: ConnId, frame: &[u8], ctx: &mut dyn Context) {
        mux::wrap(conn, frame, &mut self.entry);
        if let Err(e) = self.link.send(&self.entry) {
            ctx.debug(&format!(
                "{}: connection {conn}: frame dropped: {e}\n",
                ctx.name()
            ));
        }
    }

    /// Ends `conn` for good: its partial frame is dropped, NineDoor closes
    /// its session, the port closes the connection.
    fn close(&mut self, conn: ConnId, tell_ninedoor: bool, ctx: &mut dyn Context) {
        if self.conns.remove(&conn).is_some() {
            if tell_ninedoor {
                self.send(conn, &[], ctx);
            }
            self.port.close(conn);
        }
    }

    /// Connections that began or ended: a fresh stream, or the end told to
    /// NineDoor.
    fn events(&mut self, ctx: &mut dyn Context) {
        while let Some(event) = self.port.event() {
            match event {
                PortEvent::Opened(conn) => {
                    self.conns.insert(conn, FrameAssembler::new(MSIZE as usize));
                }
                PortEvent::Closed(conn) => {
                    let Some(partial) = self.conns.remove(&conn) else {
                        continue;
                    };
                    if partial.pending() > 0 {
                        ctx.debug(&format!(
                            "{}: connection {conn} ended; {} bytes of a frame dropped\n",
                            ctx.name(),
                            partial.pending()
                        ));
                    }
                    self.send(conn, &[], ctx);
                }
            }
        }
    }

    /// Moves `conn`'s whole frames to NineDoor while the ring takes them;
    /// whether anything moved.
    fn frames_of(&mut self, conn: ConnId, ctx: &mut dyn Context) -> bool {
        let mut moved = false;
        while !self.link.congested() {
            let Some(asm) = self.conns.get_mut(&conn) else {
                break;
            };
            match asm.next_frame() {
                Ok(Some(frame)) => {
                    self.send(conn, &frame, ctx);
                    moved = true;
                }
                Ok(None) => break,
                Err(e) => {
                    ctx.debug(&format!(
                        "{}: connection {conn}: {e}; connection closed\n",
                        ctx.name()
                    ));
                    self.close(conn, true, ctx);
                    break;
                }
            }
        }
        moved
    }

    /// Host → NineDoor: reads every connection, in turn, while the ring
    /// takes frames.
    fn pump_in(&mut self, ctx: &mut dyn Context) {
        if !self.link.is_attached() {
            return;
        }
        loop {
            self.events(ctx);
            let mut moved = false;
            let mut next = self.conns.keys().next().copied();
            while let Some(conn) = next {
                // Frames left over from a congested ring go first.
                moved |= self.frames_of(conn, ctx);
                if self.link.congested() {
                    return;
                }
                let n = self.port.read(conn, &mut self.chunk);
                if let (true, Some(asm)) = (n > 0, self.conns.get_mut(&conn)) {
                    asm.push(&self.chunk[..n]);
                    self.frames_of(conn, ctx);
                    moved = true;
                }
                next = self
                    .conns
                    .range((Bound::Excluded(conn), Bound::Unbounded))
                    .next()
                    .map(|(c, _)| *c);
            }
            if !moved || self.link.congested() {
                return;
            }
        }
    }

    /// NineDoor → host.
    fn pump_out(&mut self, ctx: &mut dyn Context) {
        loop {
            match self.link.recv(&mut self.frame) {
                Ok(true) => match mux::unwrap(&self.frame) {
                    // NineDoor ends a connection whose session lost framing.
                    Some((conn, [])) if self.conns.contains_key(&conn) => {
                        ctx.debug(&format!(
                            "{}: connection {conn} closed at NineDoor's request\n",
                            ctx.name()
                        ));
                        self.close(conn, false, ctx);
                    }
                    Some((conn, reply)) if self.conns.contains_key(&conn) => {
                        self.port.write(conn, reply);
                    }
                    _ => self.dropped += 1,
                },
                Ok(false) => break,
                Err(e) => {
                    ctx.debug(&format!("{}: {e}\n", ctx.name()));
                    break;
                }
            }
        }
    }

    /// NineDoor's bridge link ↔ the port's outbound connection.
    fn pump_bridge(&mut self, ctx: &mut dyn Context) {
        let Some(link) = self.bridge.as_mut() else {
            return;
        };
        match link.attach() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                ctx.debug(&format!("{}: bridge ring: {e}\n", ctx.name()));
                return;
            }
        }
        if let Err(e) = link.flush() {
            ctx.debug(&format!("{}: bridge ring: {e}\n", ctx.name()));
        }
        loop {
            match link.recv(&mut self.frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    ctx.debug(&format!("{}: bridge ring: {e}\n", ctx.name()));
                    break;
                }
            }
            match bridge_ring::parse(&self.frame) {
                Some((CONNECT, _)) if !self.port.bridge_connect() => {
                    bridge_ring::entry(CLOSE, &[], &mut self.entry);
                    let _ = link.send(&self.entry);
                }
                Some((DATA, bytes)) => self.port.bridge_write(bytes),
                Some((CLOSE, _)) => self.port.bridge_close(),
                _ => {}
            }
        }
        while let Some(event) = self.port.bridge_event() {
            let kind = match event {
                BridgeEvent::Connected => CONNECT,
                BridgeEvent::Closed => CLOSE,
            };
            bridge_ring::entry(kind, &[], &mut self.entry);
            let _ = link.send(&self.entry);
        }
        while !link.congested() {
            let n = self.port.bridge_read(&mut self.chunk);
            if n == 0 {
                break;
            }
            bridge_ring::entry(DATA, &self.chunk[..n], &mut self.entry);
            if let Err(e) = link.send(&self.entry) {
                ctx.debug(&format!("{}: bridge ring: {e}\n", ctx.name()));
            }
        }
        link.signal(ctx);
    }

    fn pump(&mut self, ctx: &mut dyn Context) {
        match self.link.attach() {
            Ok(_) => {}
            Err(e) => ctx.debug(&format!("{}: {e}\n", ctx.name())),
        }
        if let Err(e) = self.link.flush() {
            ctx.debug(&format!("{}: {e}\n", ctx.name()));
        }
        self.pump_out(ctx);
        self.pump_in(ctx);
        self.link.signal(ctx);
        self.pump_bridge(ctx);
    }
}

impl<P: HostPort> Handler for DevicePd<P> {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.pump(ctx);
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch == wiring::device::IRQ {
            self.port.interrupt();
            if let Some(line) = self.port.report() {
                ctx.debug(&format!("{}: {line}\n", ctx.name()));
            }
            self.pump(ctx);
            ctx.irq_ack(ch);
        } else if ch == self.link.channel()
            || ch == wiring::device::TICK
            || ch == wiring::device::BRIDGE.channel
        {
            self.pump(ctx);
        }
    }
}

/// A [`HostPort`] over one byte stream that is always connected (the
/// virtio console: no connection boundaries), as connection 0.
pub trait Stream {
    /// Reads what has arrived without waiting; 0 when nothing has.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Writes all of `data`.
    fn write(&mut self, data: &[u8]);
    /// Acknowledges the device's interrupt.
    fn interrupt(&mut self) {}
    /// [`HostPort::report`] of the stream.
    fn report(&mut self) -> Option<String> {
        None
    }
}

/// A [`Stream`] as a [`HostPort`] with one connection open at a time,
/// from the start. A stream cannot be closed, so closing the connection
/// discards what the stream holds at that moment and opens the next one
/// (a new id, a new session): the host's next client starts clean.
#[derive(Debug)]
pub struct OneStream<S: Stream> {
    stream: S,
    conn: ConnId,
    opened: bool,
}

impl<S: Stream> OneStream<S> {
    /// The port over `stream`.
    pub fn new(stream: S) -> OneStream<S> {
        OneStream {
            stream,
            conn: 0,
            opened: false,
        }
    }
}

impl<S: Stream> HostPort for OneStream<S> {
    fn event(&mut self) -> Option<PortEvent> {
        (!core::mem::replace(&mut self.opened, true)).then_some(PortEvent::Opened(self.conn))
    }
    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        if conn == self.conn && self.opened {
            self.stream.read(buf)
        } else {
            0
        }
    }
    fn write(&mut self, conn: ConnId, data: &[u8]) {
        if conn == self.conn && self.opened {
            self.stream.write(data);
        }
    }
    fn close(&mut self, conn: ConnId) {
        if conn != self.conn {
            return;
        }
        let mut sink = [0u8; 256];
        while self.stream.read(&mut sink) > 0 {}
        self.conn = self.conn.wrapping_add(1);
        self.opened = false;
    }
    fn interrupt(&mut self) {
        self.stream.interrupt();
    }
    fn report(&mut self) -> Option<String> {
        self.stream.report()
    }
}
