//! A [`HostPort`] over TCP: a `smoltcp` interface on any Ethernet device
//! (the virtio network card in the image, an in-memory wire in tests). One
//! host connection at a time carries the 9P stream; a second socket always
//! listens, so a host that reconnects while the last connection is still
//! closing is served, and one that connects while another host is
//! connected is refused (reset). Each new connection is reported as a new
//! stream ([`HostPort::take_reconnect`]) so the device PD drops any partial
//! frame the last one left.
//!
//! Replies the socket cannot take yet wait in a backlog that is pushed on
//! every poll; the PD polls on the card's interrupt, on NineDoor's
//! notifications and on the timer's tick (retransmissions).

use crate::device::HostPort;
use alloc::collections::VecDeque;
use alloc::vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

/// Bytes of the socket's receive and send buffers.
const SOCKET_BUF: usize = 32 * 1024;

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
}

/// Sockets the port keeps: the connection that carries the stream and one
/// more that listens, so a host that reconnects at once is never refused
/// while the last connection is still closing.
const SOCKETS: usize = 2;

/// The 9P stream of one TCP connection at a time.
pub struct TcpPort<D: Device> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    handles: [SocketHandle; SOCKETS],
    /// The socket that carries the stream, if a host is connected.
    active: Option<usize>,
    port: u16,
    clock: fn() -> u64,
    backlog: VecDeque<u8>,
    reconnect: bool,
    connections: u64,
    refused: u64,
    ack: fn(&mut D),
}

impl<D: Device> core::fmt::Debug for TcpPort<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpPort")
            .field("port", &self.port)
            .field("active", &self.active)
            .field("connections", &self.connections)
            .field("refused", &self.refused)
            .field("backlog", &self.backlog.len())
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
        let handles = [(); SOCKETS].map(|()| {
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
            ))
        });
        let mut port = TcpPort {
            device,
            iface,
            sockets,
            handles,
            active: None,
            port: config.port,
            clock,
            backlog: VecDeque::new(),
            reconnect: false,
            connections: 0,
            refused: 0,
            ack: |_| {},
        };
        for i in 0..SOCKETS {
            port.listen(i);
        }
        port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Connections refused because another host was connected.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Sets what acknowledges the device's interrupt
    /// ([`HostPort::interrupt`]); by default nothing does.
    pub fn with_interrupt_ack(mut self, ack: fn(&mut D)) -> TcpPort<D> {
        self.ack = ack;
        self
    }

    fn socket(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handles[i])
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

    fn now(&self) -> Instant {
        Instant::from_millis((self.clock)() as i64)
    }

    /// Runs the stack, follows the connections and pushes the backlog.
    pub fn poll(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        for i in 0..SOCKETS {
            let state = self.socket(i).state();
            let active = self.active == Some(i);
            match state {
                tcp::State::Closed | tcp::State::TimeWait => {
                    if active {
                        self.active = None;
                        self.backlog.clear();
                    }
                    self.reset(i, now);
                }
                // The host closed its side and everything it sent was read.
                tcp::State::CloseWait if active && !self.socket(i).can_recv() => {
                    self.socket(i).close();
                }
                tcp::State::CloseWait if !active => self.reset(i, now),
                tcp::State::Established if !active => {
                    let busy = self
                        .active
                        .is_some_and(|a| self.socket(a).state() == tcp::State::Established);
                    if busy {
                        // One host at a time: the stream is a single 9P
                        // session.
                        self.refused += 1;
                        self.reset(i, now);
                    } else {
                        // The last host is leaving (or gone): drop what
                        // was left of it and serve the new one.
                        if let Some(old) = self.active.replace(i) {
                            self.reset(old, now);
                        }
                        self.reconnect = true;
                        self.connections += 1;
                        self.backlog.clear();
                    }
                }
                _ => {}
            }
        }
        let Some(a) = self.active else {
            return;
        };
        let mut pushed = false;
        while !self.backlog.is_empty() {
            let (front, _) = self.backlog.as_slices();
            let s = self.sockets.get_mut::<tcp::Socket>(self.handles[a]);
            if !s.can_send() {
                break;
            }
            match s.send_slice(front) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.backlog.drain(..n);
                    pushed = true;
                }
            }
        }
        if pushed {
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        }
    }
}

impl<D: Device> HostPort for TcpPort<D> {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        self.poll();
        let Some(a) = self.active else {
            return 0;
        };
        let s = self.socket(a);
        if !s.can_recv() {
            return 0;
        }
        s.recv_slice(buf).unwrap_or(0)
    }

    fn write(&mut self, data: &[u8]) {
        if self.active.is_none() {
            // The host that asked is gone; its replies go nowhere.
            return;
        }
        self.backlog.extend(data);
        self.poll();
    }

    fn interrupt(&mut self) {
        (self.ack)(&mut self.device);
    }

    fn take_reconnect(&mut self) -> bool {
        core::mem::take(&mut self.reconnect)
    }
}
