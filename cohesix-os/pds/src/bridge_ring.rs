//! What NineDoor and the network PD say on the bridge ring pair: NineDoor
//! drives the bridge link (`ninedoor::bridge::BridgeLink`), the network PD
//! owns the one outbound TCP connection it runs on. Each ring entry is a
//! kind byte and its payload; data is the TCP byte stream in pieces (the
//! receiving NineDoor cuts it into 9P frames), so a frame of any size
//! crosses a ring whose entries are smaller.

/// NineDoor → network PD: connect to the bridge (closing any connection
/// there is). Network PD → NineDoor: the connection is up.
pub const CONNECT: u8 = 1;
/// Bytes of the stream, either way.
pub const DATA: u8 = 2;
/// NineDoor → network PD: close the connection. Network PD → NineDoor: it
/// closed, or could not be made.
pub const CLOSE: u8 = 3;

/// Bytes of stream one entry carries at most (well inside a ring's frame).
pub const MAX_DATA: usize = 4096;

/// `kind` and `payload` as one entry, in `out` (cleared first).
pub fn entry(kind: u8, payload: &[u8], out: &mut alloc::vec::Vec<u8>) {
    out.clear();
    out.push(kind);
    out.extend_from_slice(payload);
}

/// An entry's kind and payload; `None` for an empty one.
pub fn parse(entry: &[u8]) -> Option<(u8, &[u8])> {
    entry.split_first().map(|(k, rest)| (*k, rest))
}
