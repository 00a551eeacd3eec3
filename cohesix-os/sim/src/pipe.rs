//! The simulator's stand-in for a host-facing device (the virtio console,
//! the network card): byte pipes, one per host connection, shared by the
//! host PD (its [`HostPort`]) and the test playing the host. A new pipe has
//! one connection, 0, open; the plain `send`/`take` use the newest open
//! connection.

use cohesix_pds::mux::ConnId;
use cohesix_pds::{BridgeEvent, HostPort, PortEvent};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

#[derive(Debug, Default)]
struct Conn {
    to_device: VecDeque<u8>,
    from_device: Vec<u8>,
}

/// What stands at the far end of the network PD's outbound bridge
/// connection in the simulator (a test's GPU bridge: the real server, or a
/// hostile one).
pub trait BridgePeer {
    /// A connection is asked for; `false`: nothing listens.
    fn connect(&mut self) -> bool;
    /// Bytes from the guest; returns what the peer answers at once.
    fn send(&mut self, bytes: &[u8]) -> Vec<u8>;
    /// The guest closed the connection.
    fn close(&mut self);
}

#[derive(Default)]
struct Bridge {
    peer: Option<Box<dyn BridgePeer>>,
    up: bool,
    to_guest: VecDeque<u8>,
    events: VecDeque<BridgeEvent>,
    connects: usize,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("up", &self.up)
            .field("connects", &self.connects)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Queues {
    conns: BTreeMap<ConnId, Conn>,
    events: VecDeque<PortEvent>,
    next: ConnId,
    current: ConnId,
    /// Connections the device closed (framing lost), in order.
    closed_by_device: Vec<ConnId>,
    bridge: Bridge,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            conns: BTreeMap::from([(0, Conn::default())]),
            events: VecDeque::from([PortEvent::Opened(0)]),
            next: 1,
            current: 0,
            closed_by_device: Vec::new(),
            bridge: Bridge::default(),
        }
    }
}

/// Host-side byte pipes; clones share the same queues.
#[derive(Debug, Clone, Default)]
pub struct HostPipe(Rc<RefCell<Queues>>);

impl HostPipe {
    /// The host writes bytes towards the device on the newest connection
    /// (raise the device's IRQ to have them read).
    pub fn send(&self, bytes: &[u8]) {
        let conn = self.0.borrow().current;
        self.send_on(conn, bytes);
    }

    /// Takes everything the device wrote to the newest connection.
    pub fn take(&self) -> Vec<u8> {
        let conn = self.0.borrow().current;
        self.take_from(conn)
    }

    /// The host writes bytes on `conn` (nothing if it is not open).
    pub fn send_on(&self, conn: ConnId, bytes: &[u8]) {
        if let Some(c) = self.0.borrow_mut().conns.get_mut(&conn) {
            c.to_device.extend(bytes);
        }
    }

    /// Takes everything the device wrote to `conn`.
    pub fn take_from(&self, conn: ConnId) -> Vec<u8> {
        self.0
            .borrow_mut()
            .conns
            .get_mut(&conn)
            .map(|c| std::mem::take(&mut c.from_device))
            .unwrap_or_default()
    }

    /// The newest open connection.
    pub fn current(&self) -> ConnId {
        self.0.borrow().current
    }

    /// A new host connection; it becomes the newest.
    pub fn open(&self) -> ConnId {
        let mut q = self.0.borrow_mut();
        let conn = q.next;
        q.next = q.next.wrapping_add(1);
        q.conns.insert(conn, Conn::default());
        q.events.push_back(PortEvent::Opened(conn));
        q.current = conn;
        conn
    }

    /// The host ends `conn`: what the device has not read of it is gone.
    pub fn close(&self, conn: ConnId) {
        let mut q = self.0.borrow_mut();
        if q.conns.remove(&conn).is_some() {
            q.events.push_back(PortEvent::Closed(conn));
        }
    }

    /// Puts `peer` at the far end of the bridge connection (the next
    /// connection attempt reaches it).
    pub fn set_bridge(&self, peer: Box<dyn BridgePeer>) {
        self.0.borrow_mut().bridge.peer = Some(peer);
    }

    /// The bridge goes away: its connection closes (as a TCP peer that
    /// died), and nothing listens until [`HostPipe::set_bridge`].
    pub fn drop_bridge(&self) {
        let mut q = self.0.borrow_mut();
        q.bridge.peer = None;
        q.bridge.to_guest.clear();
        if std::mem::take(&mut q.bridge.up) {
            q.bridge.events.push_back(BridgeEvent::Closed);
        }
    }

    /// Whether the bridge connection is up, and how many were made.
    pub fn bridge_state(&self) -> (bool, usize) {
        let q = self.0.borrow();
        (q.bridge.up, q.bridge.connects)
    }

    /// Whether the device closed `conn` (as a TCP peer sees a reset).
    pub fn closed_by_device(&self, conn: ConnId) -> bool {
        self.0.borrow().closed_by_device.contains(&conn)
    }

    /// The newest connection ends and a new one begins (a host that
    /// reconnects).
    pub fn reconnect(&self) -> ConnId {
        let conn = self.0.borrow().current;
        self.close(conn);
        self.open()
    }
}

impl HostPort for HostPipe {
    fn event(&mut self) -> Option<PortEvent> {
        self.0.borrow_mut().events.pop_front()
    }

    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let mut q = self.0.borrow_mut();
        let Some(c) = q.conns.get_mut(&conn) else {
            return 0;
        };
        let n = buf.len().min(c.to_device.len());
        for (d, s) in buf.iter_mut().zip(c.to_device.drain(..n)) {
            *d = s;
        }
        n
    }

    fn write(&mut self, conn: ConnId, data: &[u8]) {
        if let Some(c) = self.0.borrow_mut().conns.get_mut(&conn) {
            c.from_device.extend_from_slice(data);
        }
    }

    fn close(&mut self, conn: ConnId) {
        let mut q = self.0.borrow_mut();
        if q.conns.remove(&conn).is_some() {
            q.closed_by_device.push(conn);
        }
    }

    fn bridge_connect(&mut self) -> bool {
        let mut q = self.0.borrow_mut();
        let b = &mut q.bridge;
        if let Some(p) = b.peer.as_mut() {
            if b.up {
                p.close();
            }
            b.to_guest.clear();
            b.up = p.connect();
            if b.up {
                b.connects += 1;
            }
        } else {
            b.up = false;
        }
        let event = if b.up {
            BridgeEvent::Connected
        } else {
            BridgeEvent::Closed
        };
        b.events.push_back(event);
        true
    }

    fn bridge_event(&mut self) -> Option<BridgeEvent> {
        self.0.borrow_mut().bridge.events.pop_front()
    }

    fn bridge_read(&mut self, buf: &mut [u8]) -> usize {
        let mut q = self.0.borrow_mut();
        let b = &mut q.bridge;
        let n = buf.len().min(b.to_guest.len());
        for (d, s) in buf.iter_mut().zip(b.to_guest.drain(..n)) {
            *d = s;
        }
        n
    }

    fn bridge_write(&mut self, data: &[u8]) {
        let mut q = self.0.borrow_mut();
        let b = &mut q.bridge;
        if !b.up {
            return;
        }
        if let Some(p) = b.peer.as_mut() {
            let back = p.send(data);
            b.to_guest.extend(back);
        }
    }

    fn bridge_close(&mut self) {
        let mut q = self.0.borrow_mut();
        let b = &mut q.bridge;
        if std::mem::take(&mut b.up)
            && let Some(p) = b.peer.as_mut()
        {
            p.close();
        }
        b.to_guest.clear();
    }
}
