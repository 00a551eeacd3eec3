//! `TcpPort` (the network PD's host port) against a real TCP peer: a second
//! `smoltcp` interface on the other end of an in-memory Ethernet wire,
//! driven step by step on a simulated clock.

use cohesix_pds::wiring::net;
use cohesix_pds::{HostPort, TcpConfig, TcpPort};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

thread_local! {
    static NOW_MS: Cell<u64> = const { Cell::new(1_000) };
}

fn clock() -> u64 {
    NOW_MS.with(Cell::get)
}

fn advance() -> Instant {
    NOW_MS.with(|c| c.set(c.get() + 1));
    Instant::from_millis(clock() as i64)
}

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of a full-duplex Ethernet wire.
struct WireEnd {
    rx: Queue,
    tx: Queue,
}

fn wire() -> (WireEnd, WireEnd) {
    let (a, b) = (Queue::default(), Queue::default());
    (
        WireEnd {
            rx: a.clone(),
            tx: b.clone(),
        },
        WireEnd { rx: b, tx: a },
    )
}

struct Rx(Vec<u8>);
struct Tx(Queue);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.borrow_mut().push_back(frame);
        r
    }
}

impl Device for WireEnd {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx)> {
        let frame = self.rx.borrow_mut().pop_front()?;
        Some((Rx(frame), Tx(self.tx.clone())))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx> {
        Some(Tx(self.tx.clone()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The host: QEMU's gateway address, two TCP sockets (two clients).
struct Peer {
    dev: WireEnd,
    iface: Interface,
    sockets: SocketSet<'static>,
    socks: [SocketHandle; 2],
    next_port: u16,
}

impl Peer {
    fn new(dev: WireEnd) -> Peer {
        let mut dev = dev;
        let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(mac)),
            &mut dev,
            Instant::from_millis(clock() as i64),
        );
        let [a, b, c, d] = net::GATEWAY;
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(
                    Ipv4Address::new(a, b, c, d).into(),
                    net::PREFIX,
                ))
                .unwrap();
        });
        let mut sockets = SocketSet::new(vec![]);
        let socks = [(); 2].map(|()| {
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            ))
        });
        Peer {
            dev,
            iface,
            sockets,
            socks,
            next_port: 40_000,
        }
    }

    /// The first client.
    fn sock(&mut self) -> &mut tcp::Socket<'static> {
        self.sock_n(0)
    }

    fn sock_n(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.socks[i])
    }

    fn connect(&mut self) {
        self.connect_n(0)
    }

    fn connect_n(&mut self, i: usize) {
        self.next_port += 1;
        let [a, b, c, d] = net::ADDR;
        let local = self.next_port;
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(self.socks[i])
            .connect(cx, (Ipv4Address::new(a, b, c, d), net::PORT), local)
            .unwrap();
    }

    fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }
}

/// A guest port and a host whose first client is connected to it.
fn connected() -> (TcpPort<WireEnd>, Peer) {
    let (a, b) = wire();
    let mut port = guest(a);
    let mut peer = Peer::new(b);
    peer.connect_n(0);
    run(&mut peer, &mut port, 20);
    assert_eq!(peer.sock_n(0).state(), tcp::State::Established);
    assert!(port.take_reconnect());
    (port, peer)
}

fn guest(dev: WireEnd) -> TcpPort<WireEnd> {
    TcpPort::new(
        dev,
        TcpConfig {
            mac: [2, 0, 0, 0, 0, 1],
            addr: net::ADDR,
            prefix: net::PREFIX,
            gateway: Some(net::GATEWAY),
            port: net::PORT,
        },
        clock,
    )
}

/// Runs both ends `steps` times; what the guest read meanwhile.
fn run(peer: &mut Peer, port: &mut TcpPort<WireEnd>, steps: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 700];
    for _ in 0..steps {
        let now = advance();
        peer.poll(now);
        loop {
            let n = port.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    got
}

/// Client `i` asks, the guest reads exactly that; the guest answers, the
/// client reads exactly that.
fn round_trip(peer: &mut Peer, port: &mut TcpPort<WireEnd>, i: usize, ask: &[u8], answer: &[u8]) {
    peer.sock_n(i).send_slice(ask).unwrap();
    assert_eq!(run(peer, port, 10), ask);
    port.write(answer);
    run(peer, port, 10);
    let mut got = Vec::new();
    drain_n(peer, i, &mut got);
    assert_eq!(got, answer);
}

fn drain(peer: &mut Peer, into: &mut Vec<u8>) {
    drain_n(peer, 0, into)
}

fn drain_n(peer: &mut Peer, i: usize, into: &mut Vec<u8>) {
    let s = peer.sock_n(i);
    while s.can_recv() {
        let mut buf = [0u8; 4096];
        let n = s.recv_slice(&mut buf).unwrap();
        into.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn bytes_flow_both_ways_and_a_large_reply_arrives_whole_and_in_order() {
    let (a, b) = wire();
    let mut port = guest(a);
    let mut peer = Peer::new(b);
    // A reply with no connection goes nowhere.
    port.write(b"nobody is listening");
    peer.connect();
    assert!(run(&mut peer, &mut port, 20).is_empty());
    assert_eq!(peer.sock().state(), tcp::State::Established);
    assert!(port.take_reconnect(), "a new connection is reported");
    assert!(!port.take_reconnect(), "once");
    assert_eq!(port.connections(), 1);

    peer.sock().send_slice(b"Tversion bytes").unwrap();
    assert_eq!(run(&mut peer, &mut port, 10), b"Tversion bytes");

    // 100 KiB: more than the guest socket's buffer, so most of it waits in
    // the port's backlog and goes out as the host acknowledges.
    let reply: Vec<u8> = (0..100 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    port.write(&reply);
    let mut got = Vec::new();
    for _ in 0..2_000 {
        run(&mut peer, &mut port, 1);
        drain(&mut peer, &mut got);
        if got.len() == reply.len() {
            break;
        }
    }
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "bytes arrive in order");
    assert!(!got.starts_with(b"nobody"));
}

#[test]
fn when_the_host_goes_the_port_listens_again_for_the_next_one() {
    let (a, b) = wire();
    let mut port = guest(a);
    let mut peer = Peer::new(b);
    peer.connect();
    run(&mut peer, &mut port, 20);
    assert!(port.take_reconnect());
    peer.sock().send_slice(b"first").unwrap();
    assert_eq!(run(&mut peer, &mut port, 10), b"first");

    // The host closes; the guest closes its side and listens again.
    peer.sock().close();
    run(&mut peer, &mut port, 50);
    assert!(
        matches!(
            peer.sock().state(),
            tcp::State::TimeWait | tcp::State::Closed
        ),
        "{}",
        peer.sock().state()
    );
    peer.sock().abort();
    run(&mut peer, &mut port, 5);

    peer.connect();
    run(&mut peer, &mut port, 20);
    assert_eq!(peer.sock().state(), tcp::State::Established);
    assert!(port.take_reconnect(), "the second connection is reported");
    assert_eq!(port.connections(), 2);
    round_trip(&mut peer, &mut port, 0, b"second", b"answer");
}

#[test]
fn a_host_that_reconnects_at_once_is_served() {
    let (mut port, mut peer) = connected();
    peer.sock_n(0).send_slice(b"one").unwrap();
    assert_eq!(run(&mut peer, &mut port, 10), b"one");
    // Close and connect again in the same instant: the guest's first socket
    // is still closing when the second SYN arrives.
    peer.sock_n(0).close();
    peer.connect_n(1);
    run(&mut peer, &mut port, 30);
    assert_eq!(peer.sock_n(1).state(), tcp::State::Established);
    assert!(port.take_reconnect());
    assert_eq!((port.connections(), port.refused()), (2, 0));
    round_trip(&mut peer, &mut port, 1, b"two", b"to two");
}

#[test]
fn a_second_host_is_refused_while_the_first_is_connected() {
    let (mut port, mut peer) = connected();
    peer.connect_n(1);
    run(&mut peer, &mut port, 30);
    assert!(
        !peer.sock_n(1).is_active(),
        "the second host is reset: {}",
        peer.sock_n(1).state()
    );
    assert_eq!((port.connections(), port.refused()), (1, 1));
    assert!(!port.take_reconnect(), "the stream did not change hands");
    // The first host never noticed.
    round_trip(&mut peer, &mut port, 0, b"still here", b"yes");
}

thread_local! {
    static ACKS: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn the_port_acknowledges_its_device_interrupt_with_the_given_function() {
    let (a, _b) = wire();
    let mut port =
        guest(a).with_interrupt_ack(|_dev: &mut WireEnd| ACKS.with(|c| c.set(c.get() + 1)));
    port.interrupt();
    port.interrupt();
    assert_eq!(ACKS.with(Cell::get), 2);
    // Without one, an interrupt is only a poll.
    let (c, _d) = wire();
    guest(c).interrupt();
    assert_eq!(ACKS.with(Cell::get), 2);
}
