//! The simulator's stand-in for the virtio console: two byte queues shared
//! by the device PD (its [`HostPort`]) and the test playing the host.

use cohesix_pds::HostPort;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug, Default)]
struct Queues {
    to_device: VecDeque<u8>,
    from_device: Vec<u8>,
    reconnected: bool,
}

/// A host-side byte pipe; clones share the same queues.
#[derive(Debug, Clone, Default)]
pub struct HostPipe(Rc<RefCell<Queues>>);

impl HostPipe {
    /// The host writes bytes towards the device (raise the device's IRQ to
    /// have them read).
    pub fn send(&self, bytes: &[u8]) {
        self.0.borrow_mut().to_device.extend(bytes);
    }

    /// Takes everything the device wrote to the host.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().from_device)
    }

    /// A new host connection begins (as a TCP port reports it): bytes sent
    /// from now on are a new stream; what the device has not read of the
    /// last one is gone.
    pub fn reconnect(&self) {
        let mut q = self.0.borrow_mut();
        q.to_device.clear();
        q.reconnected = true;
    }

    /// Bytes the device has not read yet.
    pub fn unread(&self) -> usize {
        self.0.borrow().to_device.len()
    }
}

impl HostPort for HostPipe {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut q = self.0.borrow_mut();
        let n = buf.len().min(q.to_device.len());
        for (d, s) in buf.iter_mut().zip(q.to_device.drain(..n)) {
            *d = s;
        }
        n
    }

    fn write(&mut self, data: &[u8]) {
        self.0.borrow_mut().from_device.extend_from_slice(data);
    }

    fn take_reconnect(&mut self) -> bool {
        std::mem::take(&mut self.0.borrow_mut().reconnected)
    }
}
