//! The framing of a host link (the device or network PD ↔ NineDoor): each
//! ring entry is a connection id byte followed by one 9P frame, so one ring
//! pair carries every host connection the PD serves, each its own 9P
//! session in NineDoor. An entry of the id alone, host PD → NineDoor, says
//! the connection has ended (NineDoor closes its session, and drops any
//! reply still on its way to it).

use alloc::vec::Vec;

/// A host connection, as the host PD numbers them. Ids are not reused
/// until the 256 after them have been: a late reply for a connection that
/// ended finds no connection, not a newer one.
pub type ConnId = u8;

/// `conn` and `frame` as one ring entry, in `out` (cleared first).
pub fn wrap(conn: ConnId, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(frame.len() + 1);
    out.push(conn);
    out.extend_from_slice(frame);
}

/// A ring entry's connection and frame; an empty frame is the end of the
/// connection. `None` for an empty entry.
pub fn unwrap(entry: &[u8]) -> Option<(ConnId, &[u8])> {
    let (conn, frame) = entry.split_first()?;
    Some((*conn, frame))
}
