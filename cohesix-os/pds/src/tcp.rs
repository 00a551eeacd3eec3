//! A [`HostPort`] over TCP: a `smoltcp` interface on any Ethernet device
//! (the virtio network card in the image, an in-memory wire in tests)
//! serving up to [`MAX_CONNECTIONS`] host connections at once, each its own
//! 9P stream (and so its own session in NineDoor). One socket more than
//! that always listens, so a host that reconnects while its last
//! connection is still closing is served; a connection beyond the limit is
//! refused (reset).
//!
//! Replies a socket cannot take yet wait in that connection's backlog,
//! pushed on every poll; the PD polls on the card's interrupt, on
//! NineDoor's notifications and on the timer's tick (retransmissions).

use crate::device::{BridgeEvent, HostPort, PortEvent};
use crate::mux::ConnId;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

/// Bytes of each socket's receive and send buffers.
const SOCKET_BUF: usize = 16 * 1024;

/// Host connections served at once.
pub const MAX_CONNECTIONS: usize = 4;

/// Sockets: the connections and one that always listens.
const SOCKETS: usize = MAX_CONNECTIONS + 1;

/// Where the port listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// The card's MAC address.
    pub mac: [u8; 6],
    /// The interface's IPv4 address.
    pub addr: [u8; 4],
    /// Its prefix length.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<[u8; 4]>,
    /// The TCP port 9P is served on.
    pub port: u16,
    /// Where the GPU bridge listens, for the one outbound connection
    /// ([`HostPort::bridge_connect`]); `None`: no bridge.
    pub bridge: Option<([u8; 4], u16)>,
}

/// The outbound connection to the GPU bridge.
struct Outbound {
    handle: SocketHandle,
    remote: ([u8; 4], u16),
    /// Local port of the next attempt.
    next_port: u16,
    /// Connecting or connected.
    active: bool,
    up: bool,
    backlog: VecDeque<u8>,
    events: VecDeque<BridgeEvent>,
}

/// TCP keepalive of the bridge connection: a peer that vanished without a
/// FIN is noticed (smoltcp then closes the socket).
const BRIDGE_KEEPALIVE_MS: u64 = 1_000;
/// How long an unacknowledged segment may wait before the bridge
/// connection is given up.
const BRIDGE_TIMEOUT_MS: u64 = 5_000;

/// A socket and the connection it carries.
struct Slot {
    handle: SocketHandle,
    /// The connection's id while a host is connected.
    conn: Option<ConnId>,
    /// Replies the socket could not take yet.
    backlog: VecDeque<u8>,
}

/// 9P over TCP, one stream per host connection.
pub struct TcpPort<D: Device> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    port: u16,
    clock: fn() -> u64,
    events: VecDeque<PortEvent>,
    next_conn: ConnId,
    connections: u64,
    refused: u64,
    ack: fn(&mut D),
    bridge: Option<Outbound>,
}

impl<D: Device> core::fmt::Debug for TcpPort<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpPort")
            .field("port", &self.port)
            .field("open", &self.open())
            .field("connections", &self.connections)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<D: Device> TcpPort<D> {
    /// Brings the interface up on `device` and listens; `clock` gives
    /// milliseconds since boot.
    pub fn new(mut device: D, config: TcpConfig, clock: fn() -> u64) -> TcpPort<D> {
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        // TCP initial sequence numbers come from here: mix in the clock.
        iface_config.random_seed = clock()
            ^ u64::from_le_bytes([
                config.mac[0],
                config.mac[1],
                config.mac[2],
                config.mac[3],
                config.mac[4],
                config.mac[5],
                0x9f,
                0x51,
            ]);
        let now = Instant::from_millis(clock() as i64);
        let mut iface = Interface::new(iface_config, &mut device, now);
        let [a, b, c, d] = config.addr;
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(
                Ipv4Address::new(a, b, c, d).into(),
                config.prefix,
            ));
        });
        if let Some([a, b, c, d]) = config.gateway {
            let _ = iface
                .routes_mut()
                .add_default_ipv4_route(Ipv4Address::new(a, b, c, d));
        }
        let mut sockets = SocketSet::new(vec![]);
        let slots = (0..SOCKETS)
            .map(|_| Slot {
                handle: sockets.add(tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
                )),
                conn: None,
                backlog: VecDeque::new(),
            })
            .collect();
        let bridge = config.bridge.map(|remote| Outbound {
            handle: sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
            )),
            remote,
            next_port: crate::wiring::net::BRIDGE_LOCAL_PORTS.start,
            active: false,
            up: false,
            backlog: VecDeque::new(),
            events: VecDeque::new(),
        });
        let mut port = TcpPort {
            device,
            iface,
            sockets,
            slots,
            port: config.port,
            clock,
            events: VecDeque::new(),
            next_conn: 0,
            connections: 0,
            refused: 0,
            ack: |_| {},
            bridge,
        };
        for i in 0..SOCKETS {
            port.listen(i);
        }
        port
    }

    /// Sets what acknowledges the device's interrupt
    /// ([`HostPort::interrupt`]); by default nothing does.
    pub fn with_interrupt_ack(mut self, ack: fn(&mut D)) -> TcpPort<D> {
        self.ack = ack;
        self
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Connections refused because [`MAX_CONNECTIONS`] were open.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.slots.iter().filter(|s| s.conn.is_some()).count()
    }

    fn socket(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        let handle = self.slots[i].handle;
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    fn slot_of(&self, conn: ConnId) -> Option<usize> {
        self.slots.iter().position(|s| s.conn == Some(conn))
    }

    fn listen(&mut self, i: usize) {
        let port = self.port;
        let s = self.socket(i);
        // 9P is request/response: answer at once rather than delay ACKs
        // until a tick that may be a second away.
        s.set_ack_delay(None);
        s.set_nagle_enabled(false);
        let _ = s.listen(port);
    }

    /// Resets socket `i`'s connection (the peer gets an RST) and listens
    /// on it again.
    fn reset(&mut self, i: usize, now: Instant) {
        self.socket(i).abort();
        // Send the RST before the socket forgets its peer.
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.listen(i);
    }

    /// A connection id no open connection has, the next after the last one
    /// handed out (ids are reused as late as possible).
    fn new_conn(&mut self) -> ConnId {
        loop {
            let id = self.next_conn;
            self.next_conn = self.next_conn.wrapping_add(1);
            if self.slot_of(id).is_none() {
                return id;
            }
        }
    }

    /// Socket `i`'s connection (if any) is over for 9P: its replies are
    /// dropped and the PD hears of it.
    fn close_conn(&mut self, i: usize) {
        if let Some(conn) = self.slots[i].conn.take() {
            self.slots[i].backlog.clear();
            self.events.push_back(PortEvent::Closed(conn));
        }
    }

    /// Runs the stack, follows the connections and pushes the backlogs.
    pub fn poll(&mut self) {
        let now = Instant::from_millis((self.clock)() as i64);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        for i in 0..SOCKETS {
            let connected = self.slots[i].conn.is_some();
            match self.socket(i).state() {
                tcp::State::Closed if !connected => self.listen(i),
                tcp::State::Closed | tcp::State::TimeWait => {
                    self.close_conn(i);
                    self.reset(i, now);
                }
                // The host closed its side and everything it sent was read:
                // the connection is over for 9P.
                tcp::State::CloseWait if connected && !self.socket(i).can_recv() => {
                    self.socket(i).close();
                    self.close_conn(i);
                }
                tcp::State::CloseWait if !connected => self.reset(i, now),
                tcp::State::Established if !connected => {
                    if self.open() >= MAX_CONNECTIONS {
                        self.refused += 1;
                        self.reset(i, now);
                    } else {
                        let conn = self.new_conn();
                        self.slots[i].conn = Some(conn);
                        self.connections += 1;
                        self.events.push_back(PortEvent::Opened(conn));
                    }
                }
                _ => {}
            }
        }
        self.poll_bridge();
        let mut pushed = false;
        if let Some(b) = self.bridge.as_mut() {
            let s = self.sockets.get_mut::<tcp::Socket>(b.handle);
            while b.up && !b.backlog.is_empty() && s.can_send() {
                let (front, _) = b.backlog.as_slices();
                match s.send_slice(front) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        b.backlog.drain(..n);
                        pushed = true;
                    }
                }
            }
        }
        for slot in &mut self.slots {
            if slot.conn.is_none() {
                continue;
            }
            let s = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            while !slot.backlog.is_empty() && s.can_send() {
                let (front, _) = slot.backlog.as_slices();
                match s.send_slice(front) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        slot.backlog.drain(..n);
                        pushed = true;
                    }
                }
            }
        }
        if pushed {
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        }
    }
}

impl<D: Device> TcpPort<D> {
    /// Follows the bridge connection's state.
    fn poll_bridge(&mut self) {
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        if !b.active {
            return;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(b.handle);
        match s.state() {
            tcp::State::Established if !b.up => {
                b.up = true;
                b.events.push_back(BridgeEvent::Connected);
            }
            tcp::State::Closed | tcp::State::TimeWait => {
                b.active = false;
                b.up = false;
                b.backlog.clear();
                b.events.push_back(BridgeEvent::Closed);
            }
            // The bridge closed its side and all it sent was read.
            tcp::State::CloseWait if !s.can_recv() => {
                s.abort();
                b.active = false;
                b.up = false;
                b.backlog.clear();
                b.events.push_back(BridgeEvent::Closed);
            }
            _ => {}
        }
    }
}

/// The stack runs in [`HostPort::event`], which the PD calls before it
/// reads or writes on every pump: a read takes what that poll received,
/// and a write waits in its connection's backlog for the next poll.
impl<D: Device> HostPort for TcpPort<D> {
    fn event(&mut self) -> Option<PortEvent> {
        if self.events.is_empty() {
            self.poll();
        }
        self.events.pop_front()
    }

    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let Some(i) = self.slot_of(conn) else {
            return 0;
        };
        let s = self.socket(i);
        if !s.can_recv() {
            return 0;
        }
        s.recv_slice(buf).unwrap_or(0)
    }

    fn write(&mut self, conn: ConnId, data: &[u8]) {
        // A host that is gone gets nothing.
        if let Some(i) = self.slot_of(conn) {
            self.slots[i].backlog.extend(data);
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(i) = self.slot_of(conn) {
            // The PD already forgot the connection: no Closed event.
            self.slots[i].conn = None;
            self.slots[i].backlog.clear();
            let now = Instant::from_millis((self.clock)() as i64);
            self.reset(i, now);
        }
    }

    fn interrupt(&mut self) {
        (self.ack)(&mut self.device);
    }

    fn bridge_connect(&mut self) -> bool {
        let Some(b) = self.bridge.as_mut() else {
            return false;
        };
        let s = self.sockets.get_mut::<tcp::Socket>(b.handle);
        s.abort();
        b.backlog.clear();
        b.up = false;
        let ports = crate::wiring::net::BRIDGE_LOCAL_PORTS;
        let local = b.next_port;
        b.next_port = if local + 1 >= ports.end {
            ports.start
        } else {
            local + 1
        };
        let ([a, bb, c, d], port) = b.remote;
        s.set_ack_delay(None);
        s.set_nagle_enabled(false);
        s.set_keep_alive(Some(smoltcp::time::Duration::from_millis(
            BRIDGE_KEEPALIVE_MS,
        )));
        s.set_timeout(Some(smoltcp::time::Duration::from_millis(
            BRIDGE_TIMEOUT_MS,
        )));
        let remote = (Ipv4Address::new(a, bb, c, d), port);
        match s.connect(self.iface.context(), remote, local) {
            Ok(()) => {
                b.active = true;
                self.poll();
                true
            }
            Err(_) => false,
        }
    }

    fn bridge_event(&mut self) -> Option<BridgeEvent> {
        self.bridge.as_mut()?.events.pop_front()
    }

    fn bridge_read(&mut self, buf: &mut [u8]) -> usize {
        let Some(b) = self.bridge.as_ref() else {
            return 0;
        };
        if !b.up {
            return 0;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(b.handle);
        if !s.can_recv() {
            return 0;
        }
        s.recv_slice(buf).unwrap_or(0)
    }

    fn bridge_write(&mut self, data: &[u8]) {
        if let Some(b) = self.bridge.as_mut().filter(|b| b.up) {
            b.backlog.extend(data);
            self.poll();
        }
    }

    fn bridge_close(&mut self) {
        if let Some(b) = self.bridge.as_mut() {
            let s = self.sockets.get_mut::<tcp::Socket>(b.handle);
            s.abort();
            b.active = false;
            b.up = false;
            b.backlog.clear();
            let now = Instant::from_millis((self.clock)() as i64);
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        }
    }
}
