//! A [`HostPort`] over TCP: a `smoltcp` interface on any Ethernet device
//! (the virtio network card in the image, an in-memory wire in tests) with
//! one listening socket. One host connection at a time carries the 9P
//! stream; when it ends the socket listens again, and the next connection
//! is reported as a new stream ([`HostPort::take_reconnect`]) so the device
//! PD drops any partial frame the last one left.
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

/// The 9P stream of one TCP connection at a time.
pub struct TcpPort<D: Device> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    socket: SocketHandle,
    port: u16,
    clock: fn() -> u64,
    backlog: VecDeque<u8>,
    connected: bool,
    reconnect: bool,
    connections: u64,
}

impl<D: Device> core::fmt::Debug for TcpPort<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpPort")
            .field("port", &self.port)
            .field("connected", &self.connected)
            .field("connections", &self.connections)
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
        let socket = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
            tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
        ));
        let mut port = TcpPort {
            device,
            iface,
            sockets,
            socket,
            port: config.port,
            clock,
            backlog: VecDeque::new(),
            connected: false,
            reconnect: false,
            connections: 0,
        };
        port.listen();
        port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// The device (for the image's interrupt acknowledgement).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    fn listen(&mut self) {
        let s = self.sockets.get_mut::<tcp::Socket>(self.socket);
        s.abort();
        // 9P is request/response: answer at once rather than delay ACKs
        // until a tick that may be a second away.
        s.set_ack_delay(None);
        s.set_nagle_enabled(false);
        let _ = s.listen(self.port);
    }

    fn now(&self) -> Instant {
        Instant::from_millis((self.clock)() as i64)
    }

    /// Runs the stack, follows the connection's state and pushes the
    /// backlog.
    pub fn poll(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        let s = self.sockets.get_mut::<tcp::Socket>(self.socket);
        match s.state() {
            tcp::State::Established if !self.connected => {
                self.connected = true;
                self.reconnect = true;
                self.connections += 1;
                self.backlog.clear();
            }
            // The host closed its side and everything it sent was read.
            tcp::State::CloseWait if !s.can_recv() => s.close(),
            tcp::State::Closed | tcp::State::TimeWait => {
                self.connected = false;
                self.backlog.clear();
                self.listen();
            }
            _ => {}
        }
        let s = self.sockets.get_mut::<tcp::Socket>(self.socket);
        let mut pushed = false;
        while !self.backlog.is_empty() && s.can_send() {
            let (front, _) = self.backlog.as_slices();
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
        let s = self.sockets.get_mut::<tcp::Socket>(self.socket);
        if !s.can_recv() {
            return 0;
        }
        s.recv_slice(buf).unwrap_or(0)
    }

    fn write(&mut self, data: &[u8]) {
        if !self.connected {
            // The host that asked is gone; its replies go nowhere.
            return;
        }
        self.backlog.extend(data);
        self.poll();
    }

    fn take_reconnect(&mut self) -> bool {
        core::mem::take(&mut self.reconnect)
    }
}
