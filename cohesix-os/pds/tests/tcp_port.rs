//! `TcpPort` (the network PD's host port) against a real TCP peer: a second
//! `smoltcp` interface on the other end of an in-memory Ethernet wire,
//! driven step by step on a simulated clock.

use cohesix_pds::mux::ConnId;
use cohesix_pds::wiring::net;
use cohesix_pds::{HostPort, MAX_CONNECTIONS, PortEvent, TcpConfig, TcpPort};
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

/// Client sockets the host has: one more than the guest serves.
const CLIENTS: usize = MAX_CONNECTIONS + 1;

/// Where the host's bridge listens in these tests (at the gateway).
const BRIDGE_PORT: u16 = 5650;

/// The host: QEMU's gateway address, several TCP clients, and a listener
/// standing for the GPU bridge.
struct Peer {
    dev: WireEnd,
    iface: Interface,
    sockets: SocketSet<'static>,
    socks: [SocketHandle; CLIENTS],
    bridge: SocketHandle,
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
        let socks = [(); CLIENTS].map(|()| {
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            ))
        });
        let mut listener = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        listener.listen(BRIDGE_PORT).unwrap();
        let bridge = sockets.add(listener);
        Peer {
            dev,
            iface,
            sockets,
            socks,
            bridge,
            next_port: 40_000,
        }
    }

    fn bridge(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.bridge)
    }

    fn sock_n(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.socks[i])
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

/// The guest's port and its events so far.
struct Guest {
    port: TcpPort<WireEnd>,
    events: Vec<PortEvent>,
    /// Connections opened and not closed, by the events.
    open: Vec<ConnId>,
}

impl Guest {
    fn new(dev: WireEnd) -> Guest {
        Guest {
            port: TcpPort::new(
                dev,
                TcpConfig {
                    mac: [2, 0, 0, 0, 0, 1],
                    addr: net::ADDR,
                    prefix: net::PREFIX,
                    gateway: Some(net::GATEWAY),
                    port: net::PORT,
                    bridge: Some((net::GATEWAY, BRIDGE_PORT)),
                },
                clock,
            ),
            events: Vec::new(),
            open: Vec::new(),
        }
    }

    /// The connection the last `Opened` event named.
    fn last_opened(&self) -> ConnId {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                PortEvent::Opened(c) => Some(*c),
                PortEvent::Closed(_) => None,
            })
            .expect("a connection was opened")
    }

    fn take_events(&mut self) -> Vec<PortEvent> {
        std::mem::take(&mut self.events)
    }
}

/// Runs both ends `steps` times; the guest's events are collected and
/// what each connection sent is read, by connection.
fn run(peer: &mut Peer, guest: &mut Guest, steps: usize) -> Vec<(ConnId, Vec<u8>)> {
    let mut got: Vec<(ConnId, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 700];
    for _ in 0..steps {
        let now = advance();
        peer.poll(now);
        while let Some(e) = guest.port.event() {
            match e {
                PortEvent::Opened(c) => guest.open.push(c),
                PortEvent::Closed(c) => guest.open.retain(|o| *o != c),
            }
            guest.events.push(e);
        }
        for conn in guest.open.clone() {
            loop {
                let n = guest.port.read(conn, &mut buf);
                if n == 0 {
                    break;
                }
                match got.iter_mut().find(|(c, _)| *c == conn) {
                    Some((_, bytes)) => bytes.extend_from_slice(&buf[..n]),
                    None => got.push((conn, buf[..n].to_vec())),
                }
            }
        }
    }
    got
}

/// A guest and a host whose client 0 is connected; its connection id.
fn connected() -> (Guest, Peer, ConnId) {
    let (a, b) = wire();
    let mut guest = Guest::new(a);
    let mut peer = Peer::new(b);
    peer.connect_n(0);
    run(&mut peer, &mut guest, 20);
    assert_eq!(peer.sock_n(0).state(), tcp::State::Established);
    let conn = guest.last_opened();
    assert_eq!(guest.take_events(), [PortEvent::Opened(conn)]);
    (guest, peer, conn)
}

/// Client `i` asks on `conn`, the guest reads exactly that there; the
/// guest answers, the client reads exactly that.
fn round_trip(
    peer: &mut Peer,
    guest: &mut Guest,
    i: usize,
    conn: ConnId,
    ask: &[u8],
    answer: &[u8],
) {
    peer.sock_n(i).send_slice(ask).unwrap();
    assert_eq!(run(peer, guest, 10), [(conn, ask.to_vec())]);
    guest.port.write(conn, answer);
    run(peer, guest, 10);
    let mut got = Vec::new();
    drain_n(peer, i, &mut got);
    assert_eq!(got, answer);
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
    let (mut guest, mut peer, conn) = connected();
    // A reply for a connection that does not exist goes nowhere.
    guest
        .port
        .write(conn.wrapping_add(1), b"nobody is listening");
    round_trip(
        &mut peer,
        &mut guest,
        0,
        conn,
        b"Tversion bytes",
        b"Rversion",
    );

    // 100 KiB: more than the guest socket's buffer, so most of it waits in
    // the connection's backlog and goes out as the host acknowledges.
    let reply: Vec<u8> = (0..100 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    guest.port.write(conn, &reply);
    let mut got = Vec::new();
    for _ in 0..2_000 {
        run(&mut peer, &mut guest, 1);
        drain_n(&mut peer, 0, &mut got);
        if got.len() == reply.len() {
            break;
        }
    }
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "bytes arrive in order");
}

#[test]
fn when_a_host_goes_its_connection_closes_and_the_next_gets_a_new_id() {
    let (mut guest, mut peer, first) = connected();
    round_trip(&mut peer, &mut guest, 0, first, b"first", b"one");
    peer.sock_n(0).close();
    run(&mut peer, &mut guest, 50);
    assert_eq!(guest.take_events(), [PortEvent::Closed(first)]);
    assert_eq!(guest.port.open(), 0);
    // Replies still on their way to it are dropped.
    guest.port.write(first, b"late");
    peer.sock_n(0).abort();
    run(&mut peer, &mut guest, 5);

    peer.connect_n(0);
    run(&mut peer, &mut guest, 20);
    assert_eq!(peer.sock_n(0).state(), tcp::State::Established);
    let second = guest.last_opened();
    assert_ne!(second, first, "ids are not reused at once");
    assert_eq!(guest.port.connections(), 2);
    round_trip(&mut peer, &mut guest, 0, second, b"second", b"answer");
}

#[test]
fn a_host_that_reconnects_at_once_is_served() {
    let (mut guest, mut peer, first) = connected();
    // Close and connect again in the same instant: the guest's first socket
    // is still closing when the second SYN arrives.
    peer.sock_n(0).close();
    peer.connect_n(1);
    run(&mut peer, &mut guest, 30);
    assert_eq!(peer.sock_n(1).state(), tcp::State::Established);
    let second = guest.last_opened();
    let events = guest.take_events();
    assert!(events.contains(&PortEvent::Closed(first)), "{events:?}");
    assert!(events.contains(&PortEvent::Opened(second)), "{events:?}");
    assert_eq!((guest.port.connections(), guest.port.refused()), (2, 0));
    round_trip(&mut peer, &mut guest, 1, second, b"two", b"to two");
}

#[test]
fn hosts_are_served_side_by_side_up_to_the_limit_and_the_next_is_refused() {
    let (mut guest, mut peer, first) = connected();
    let mut conns = vec![first];
    for i in 1..MAX_CONNECTIONS {
        peer.connect_n(i);
        run(&mut peer, &mut guest, 20);
        assert_eq!(peer.sock_n(i).state(), tcp::State::Established);
        conns.push(guest.last_opened());
    }
    let mut unique = conns.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), MAX_CONNECTIONS, "{conns:?}");
    assert_eq!(guest.port.open(), MAX_CONNECTIONS);
    // One more is refused; every open one carries its own stream.
    peer.connect_n(MAX_CONNECTIONS);
    run(&mut peer, &mut guest, 30);
    assert!(
        !peer.sock_n(MAX_CONNECTIONS).is_active(),
        "refused: {}",
        peer.sock_n(MAX_CONNECTIONS).state()
    );
    assert_eq!(guest.port.refused(), 1);
    for (i, conn) in conns.iter().enumerate() {
        peer.sock_n(i)
            .send_slice(format!("ask {i}").as_bytes())
            .unwrap();
        guest.port.write(*conn, format!("answer {i}").as_bytes());
    }
    let got = run(&mut peer, &mut guest, 20);
    for (i, conn) in conns.iter().enumerate() {
        let want = format!("ask {i}").into_bytes();
        assert!(got.contains(&(*conn, want)), "{got:?}");
        let mut answer = Vec::new();
        drain_n(&mut peer, i, &mut answer);
        assert_eq!(answer, format!("answer {i}").into_bytes());
    }
    // When one goes, a new host fits again.
    peer.sock_n(2).close();
    run(&mut peer, &mut guest, 50);
    assert_eq!(guest.port.open(), MAX_CONNECTIONS - 1);
    peer.sock_n(MAX_CONNECTIONS).abort();
    peer.connect_n(MAX_CONNECTIONS);
    run(&mut peer, &mut guest, 30);
    assert_eq!(
        peer.sock_n(MAX_CONNECTIONS).state(),
        tcp::State::Established
    );
    assert_eq!(guest.port.open(), MAX_CONNECTIONS);
}

thread_local! {
    static ACKS: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn the_port_acknowledges_its_device_interrupt_with_the_given_function() {
    let (a, _b) = wire();
    let mut port = Guest::new(a)
        .port
        .with_interrupt_ack(|_dev: &mut WireEnd| ACKS.with(|c| c.set(c.get() + 1)));
    port.interrupt();
    port.interrupt();
    assert_eq!(ACKS.with(Cell::get), 2);
    // Without one, an interrupt is only a poll.
    let (c, _d) = wire();
    Guest::new(c).port.interrupt();
    assert_eq!(ACKS.with(Cell::get), 2);
}

#[test]
fn a_connection_the_pd_closes_is_reset_and_the_next_one_is_served() {
    let (mut guest, mut peer, first) = connected();
    round_trip(&mut peer, &mut guest, 0, first, b"before", b"ok");
    // The PD lost this stream's framing: the host sees a reset at once,
    // and no Closed event follows (the PD already forgot it).
    guest.port.close(first);
    run(&mut peer, &mut guest, 5);
    assert_eq!(peer.sock_n(0).state(), tcp::State::Closed);
    assert_eq!(guest.port.open(), 0);
    assert!(guest.take_events().is_empty());
    // Replies to it go nowhere; a new connection is served.
    guest.port.write(first, b"late");
    peer.connect_n(0);
    run(&mut peer, &mut guest, 20);
    let second = guest.last_opened();
    assert_ne!(second, first);
    round_trip(&mut peer, &mut guest, 0, second, b"after", b"fine");
}

#[test]
fn the_bridge_connection_goes_out_carries_bytes_both_ways_and_reports_its_end() {
    use cohesix_pds::BridgeEvent;
    let (w1, w2) = wire();
    let (mut guest, mut peer) = (Guest::new(w1), Peer::new(w2));
    assert!(guest.port.bridge_connect());
    run(&mut peer, &mut guest, 20);
    assert_eq!(peer.bridge().state(), tcp::State::Established);
    assert_eq!(guest.port.bridge_event(), Some(BridgeEvent::Connected));
    assert_eq!(guest.port.bridge_event(), None);
    // The guest's bytes reach the bridge, the bridge's reach the guest.
    guest.port.bridge_write(b"Tversion");
    run(&mut peer, &mut guest, 10);
    let mut got = [0u8; 64];
    let n = peer.bridge().recv_slice(&mut got).unwrap();
    assert_eq!(&got[..n], b"Tversion");
    peer.bridge().send_slice(b"Rversion").unwrap();
    run(&mut peer, &mut guest, 10);
    let n = guest.port.bridge_read(&mut got);
    assert_eq!(&got[..n], b"Rversion");
    // Host connections are not disturbed by it.
    assert_eq!(guest.port.open(), 0);
    // The bridge goes away: the guest hears of it.
    peer.bridge().close();
    run(&mut peer, &mut guest, 50);
    assert_eq!(guest.port.bridge_event(), Some(BridgeEvent::Closed));
    // A new attempt with nothing listening is refused and reported.
    peer.bridge().abort();
    run(&mut peer, &mut guest, 5);
    assert!(guest.port.bridge_connect());
    run(&mut peer, &mut guest, 20);
    assert_eq!(guest.port.bridge_event(), Some(BridgeEvent::Closed));
}
