//! Leases: who may use a GPU, with how much memory, how many streams, at
//! what priority, until when. [`LeaseBook`] arbitrates one GPU.
//!
//! The arbitration rule:
//! - An idle GPU is granted to the first request.
//! - A request from the current holder replaces its terms and restarts its
//!   TTL (its queued jobs stay).
//! - A request with a strictly higher priority than the active lease
//!   preempts it: the old lease ends (its queued jobs are drained with
//!   `ERR PREEMPTED`; a running job finishes) and the request is granted.
//! - Any other request waits, ordered by priority and then arrival, in a
//!   list of at most [`MAX_WAITING_LEASES`]; a full list refuses with
//!   `EBUSY`. When the active lease ends (release, expiry, preemption) the
//!   first waiting request is granted, its TTL starting then.
//! - Lowering the active lease's priority (`PRIORITY <n>`) below a waiting
//!   request's lets that request preempt it at once, so the rule "the
//!   active lease outranks every waiting request" always holds.
//!
//! Time is an argument (`now`, ms); nothing here reads a clock.

use crate::descriptor::{GpuDescriptor, valid_id};
use crate::error::BridgeError;
use crate::limits::{MAX_STREAMS, MAX_TTL_S, MAX_WAITING_LEASES};
use serde::{Deserialize, Serialize};

/// The terms of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuLease {
    /// The GPU leased.
    pub gpu_id: String,
    /// Device memory the holder's running jobs may use together, MiB.
    pub mem_mb: u32,
    /// Streams the holder's running jobs may occupy together.
    pub streams: u32,
    /// Lifetime from grant or renewal, seconds.
    pub ttl_s: u32,
    /// Arbitration priority: higher wins.
    pub priority: u8,
    /// Who holds it (a GPU worker's subject).
    pub holder: String,
}

/// The fields of a `LEASE` command, as JSON (`{"holder":"w1",…}`) or as
/// `key=value` words (`holder=w1 mem_mb=1024 ttl_s=60`). `holder`, `mem_mb`
/// and `ttl_s` are required; `streams` defaults to 1 and `priority` to 0;
/// `gpu_id`, if given, must name the GPU written to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who asks.
    pub holder: String,
    /// Memory cap, MiB.
    pub mem_mb: u32,
    /// Stream cap.
    #[serde(default = "one")]
    pub streams: u32,
    /// Lifetime, seconds.
    pub ttl_s: u32,
    /// Priority.
    #[serde(default)]
    pub priority: u8,
    /// The GPU meant, if named.
    #[serde(default)]
    pub gpu_id: Option<String>,
}

fn one() -> u32 {
    1
}

fn bad(msg: impl Into<String>) -> BridgeError {
    BridgeError::BadLease(msg.into())
}

impl LeaseRequest {
    /// Parses the fields after `LEASE`.
    pub fn parse(text: &str) -> Result<Self, BridgeError> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text).map_err(|e| bad(e.to_string()));
        }
        let mut fields = serde_json::Map::new();
        for word in text.split_ascii_whitespace() {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| bad(format!("{word:?} is not key=value")))?;
            let value = match key {
                "holder" | "gpu_id" => serde_json::Value::from(value),
                _ => value
                    .parse::<u64>()
                    .map(serde_json::Value::from)
                    .map_err(|_| bad(format!("{key} = {value:?} is not a number")))?,
            };
            if fields.insert(String::from(key), value).is_some() {
                return Err(bad(format!("{key} given twice")));
            }
        }
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| bad(e.to_string()))
    }

    /// The lease these fields ask for on `gpu`, checked against its limits.
    pub fn terms(&self, gpu: &GpuDescriptor) -> Result<GpuLease, BridgeError> {
        if let Some(id) = &self.gpu_id
            && *id != gpu.id
        {
            return Err(bad(format!("gpu_id {id} written to gpu {}", gpu.id)));
        }
        if !valid_id(&self.holder) {
            return Err(bad(format!(
                "holder {:?} is not 1-64 bytes of [A-Za-z0-9_.-]",
                self.holder
            )));
        }
        if self.mem_mb == 0 || u64::from(self.mem_mb) > gpu.memory_mb {
            return Err(bad(format!(
                "mem_mb = {} is outside 1..={} (the GPU's memory)",
                self.mem_mb, gpu.memory_mb
            )));
        }
        if self.streams == 0 || self.streams > MAX_STREAMS {
            return Err(bad(format!(
                "streams = {} is outside 1..={MAX_STREAMS}",
                self.streams
            )));
        }
        check_ttl(self.ttl_s)?;
        Ok(GpuLease {
            gpu_id: gpu.id.clone(),
            mem_mb: self.mem_mb,
            streams: self.streams,
            ttl_s: self.ttl_s,
            priority: self.priority,
            holder: self.holder.clone(),
        })
    }
}

fn check_ttl(ttl_s: u32) -> Result<(), BridgeError> {
    if ttl_s == 0 || ttl_s > MAX_TTL_S {
        return Err(bad(format!("ttl_s = {ttl_s} is outside 1..={MAX_TTL_S}")));
    }
    Ok(())
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveLease {
    /// Its terms.
    #[serde(flatten)]
    pub lease: GpuLease,
    /// Numbers grants of this GPU (a renewal or change of terms keeps it).
    pub lease_id: u64,
    /// When it was granted, ms.
    pub granted_ms: u64,
    /// When it expires, ms.
    pub expires_ms: u64,
}

/// Why a lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Its TTL ran out.
    Expired,
    /// It was released.
    Released,
    /// A higher-priority request took the GPU.
    Preempted {
        /// The new holder.
        by: String,
    },
    /// The GPU was reset.
    Reset,
}

impl LeaseEnd {
    /// The reason token of the `ERR` lines of the jobs it drains.
    pub fn reason(&self) -> &'static str {
        match self {
            LeaseEnd::Expired => "EXPIRED",
            LeaseEnd::Released => "RELEASED",
            LeaseEnd::Preempted { .. } => "PREEMPTED",
            LeaseEnd::Reset => "RESET",
        }
    }
}

/// A lease that ended, and the waiting request granted in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The lease that ended.
    pub ended: ActiveLease,
    /// Why.
    pub why: LeaseEnd,
    /// The lease granted next, if any.
    pub next: Option<ActiveLease>,
}

/// What became of a `LEASE` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Granted on an idle GPU.
    Granted(ActiveLease),
    /// The holder's own lease, with new terms.
    Replaced(ActiveLease),
    /// Granted by preempting the active lease.
    Preempted {
        /// The new lease.
        granted: ActiveLease,
        /// The lease it ended.
        ended: ActiveLease,
    },
    /// Waiting, at this 1-based position.
    Waiting {
        /// Position in the waiting list.
        position: usize,
    },
}

#[derive(Debug, Clone)]
struct Waiting {
    lease: GpuLease,
    seq: u64,
}

/// The lease state of one GPU.
#[derive(Debug, Clone, Default)]
pub struct LeaseBook {
    active: Option<ActiveLease>,
    waiting: Vec<Waiting>,
    next_id: u64,
    next_seq: u64,
}

impl LeaseBook {
    /// The active lease, if any (it may have expired if [`LeaseBook::expire`]
    /// has not run since).
    pub fn active(&self) -> Option<&ActiveLease> {
        self.active.as_ref()
    }

    /// The waiting requests, first to be granted first.
    pub fn waiting(&self) -> impl Iterator<Item = &GpuLease> {
        self.waiting.iter().map(|w| &w.lease)
    }

    fn grant(&mut self, lease: GpuLease, now: u64) -> ActiveLease {
        self.next_id += 1;
        let active = ActiveLease {
            expires_ms: now.saturating_add(u64::from(lease.ttl_s) * 1000),
            lease,
            lease_id: self.next_id,
            granted_ms: now,
        };
        self.active = Some(active.clone());
        active
    }

    fn promote(&mut self, now: u64) -> Option<ActiveLease> {
        if self.waiting.is_empty() {
            return None;
        }
        let next = self.waiting.remove(0);
        Some(self.grant(next.lease, now))
    }

    fn enqueue(&mut self, lease: GpuLease) -> Result<usize, BridgeError> {
        // A holder waits once: asking again replaces its request.
        let seq = match self
            .waiting
            .iter()
            .position(|w| w.lease.holder == lease.holder)
        {
            Some(i) => self.waiting.remove(i).seq,
            None => {
                if self.waiting.len() >= MAX_WAITING_LEASES {
                    return Err(BridgeError::Busy {
                        gpu: lease.gpu_id.clone(),
                        detail: format!("{MAX_WAITING_LEASES} lease requests are waiting"),
                    });
                }
                self.next_seq += 1;
                self.next_seq
            }
        };
        let at = self
            .waiting
            .iter()
            .position(|w| {
                (w.lease.priority, std::cmp::Reverse(w.seq))
                    < (lease.priority, std::cmp::Reverse(seq))
            })
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, Waiting { lease, seq });
        Ok(at + 1)
    }

    /// Arbitrates a request (see the module docs for the rule).
    pub fn request(&mut self, lease: GpuLease, now: u64) -> Result<Grant, BridgeError> {
        let Some(active) = self.active.as_mut() else {
            return Ok(Grant::Granted(self.grant(lease, now)));
        };
        if active.lease.holder == lease.holder {
            active.expires_ms = now.saturating_add(u64::from(lease.ttl_s) * 1000);
            active.lease = lease;
            return Ok(Grant::Replaced(active.clone()));
        }
        if lease.priority > active.lease.priority {
            let ended = active.clone();
            let granted = self.grant(lease, now);
            return Ok(Grant::Preempted { granted, ended });
        }
        self.enqueue(lease)
            .map(|position| Grant::Waiting { position })
    }

    /// Ends the active lease (when `holder` is `None` or names its holder)
    /// and grants the next waiting request, or withdraws `holder`'s waiting
    /// request. `Ok(None)` means a waiting request was withdrawn.
    pub fn release(
        &mut self,
        holder: Option<&str>,
        now: u64,
    ) -> Result<Option<Handover>, BridgeError> {
        let holds = |a: &ActiveLease| holder.is_none_or(|h| a.lease.holder == h);
        if let Some(ended) = self.active.take_if(|a| holds(a)) {
            let next = self.promote(now);
            return Ok(Some(Handover {
                ended,
                why: LeaseEnd::Released,
                next,
            }));
        }
        if let Some(h) = holder {
            if let Some(i) = self.waiting.iter().position(|w| w.lease.holder == h) {
                self.waiting.remove(i);
                return Ok(None);
            }
            return Err(bad(format!("{h} holds no lease and waits for none")));
        }
        Err(bad("no lease to release"))
    }

    /// Extends the active lease to `now + ttl_s` (its own TTL if `None`).
    pub fn renew(&mut self, ttl_s: Option<u32>, now: u64) -> Result<ActiveLease, BridgeError> {
        let Some(active) = self.active.as_mut() else {
            return Err(BridgeError::NoLease(String::new()));
        };
        let ttl = ttl_s.unwrap_or(active.lease.ttl_s);
        check_ttl(ttl)?;
        active.lease.ttl_s = ttl;
        active.expires_ms = now.saturating_add(u64::from(ttl) * 1000);
        Ok(active.clone())
    }

    /// Sets the active lease's priority; a waiting request that now outranks
    /// it preempts it.
    pub fn set_priority(
        &mut self,
        priority: u8,
        now: u64,
    ) -> Result<Option<Handover>, BridgeError> {
        let Some(active) = self.active.as_mut() else {
            return Err(BridgeError::NoLease(String::new()));
        };
        active.lease.priority = priority;
        let outranked = self
            .waiting
            .first()
            .is_some_and(|w| w.lease.priority > priority);
        if !outranked {
            return Ok(None);
        }
        let ended = active.clone();
        let next = self.promote(now);
        let by = next
            .as_ref()
            .map(|n| n.lease.holder.clone())
            .unwrap_or_default();
        Ok(Some(Handover {
            ended,
            why: LeaseEnd::Preempted { by },
            next,
        }))
    }

    /// Ends the active lease if it has expired at `now`, granting the next.
    pub fn expire(&mut self, now: u64) -> Option<Handover> {
        let ended = self.active.take_if(|a| now >= a.expires_ms)?;
        let next = self.promote(now);
        Some(Handover {
            ended,
            why: LeaseEnd::Expired,
            next,
        })
    }

    /// Ends the active lease and drops every waiting request. Returns the
    /// lease that ended and how many requests were dropped.
    pub fn reset(&mut self) -> (Option<ActiveLease>, usize) {
        let dropped = self.waiting.len();
        self.waiting.clear();
        (self.active.take(), dropped)
    }
}

/// What a restarted bridge brings back (see `store`): the book's parts out
/// and in, nothing else.
impl LeaseBook {
    /// The number of the last grant: a restored book numbers later grants
    /// after it, so a `lease_id` never names two grants.
    pub(crate) fn last_id(&self) -> u64 {
        self.next_id
    }

    /// A book holding `active` and the `waiting` requests (first to be
    /// granted first), numbering later grants after `last_id`.
    pub(crate) fn restored(
        active: Option<ActiveLease>,
        waiting: Vec<GpuLease>,
        last_id: u64,
    ) -> LeaseBook {
        let waiting: Vec<Waiting> = waiting
            .into_iter()
            .zip(1u64..)
            .map(|(lease, seq)| Waiting { lease, seq })
            .collect();
        LeaseBook {
            next_seq: waiting.len() as u64,
            active,
            waiting,
            next_id: last_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> GpuDescriptor {
        GpuDescriptor {
            id: "0".into(),
            name: "test".into(),
            uuid: "GPU-0".into(),
            memory_mb: 8192,
            sm_count: None,
            driver_version: "1".into(),
            runtime_version: "12.0".into(),
        }
    }

    fn lease(holder: &str, priority: u8) -> GpuLease {
        LeaseRequest::parse(&format!(
            "holder={holder} mem_mb=1024 ttl_s=10 priority={priority}"
        ))
        .unwrap()
        .terms(&gpu())
        .unwrap()
    }

    #[test]
    fn parse_both_forms() {
        let kv = LeaseRequest::parse("holder=w1 mem_mb=512 streams=2 ttl_s=60 priority=3").unwrap();
        let json = LeaseRequest::parse(
            r#"{"holder":"w1","mem_mb":512,"streams":2,"ttl_s":60,"priority":3}"#,
        )
        .unwrap();
        assert_eq!(kv, json);
        assert_eq!(
            LeaseRequest::parse("holder=w1 mem_mb=1 ttl_s=1")
                .unwrap()
                .streams,
            1
        );
        for bad in [
            "holder=w1 mem_mb=1",
            "holder=w1 mem_mb=x ttl_s=1",
            "holder=w1 mem_mb=1 ttl_s=1 color=red",
            "holder=w1 holder=w2 mem_mb=1 ttl_s=1",
            "holder=w1 mem_mb=1 ttl_s=1 priority=256",
            "justaword",
            r#"{"holder":"w1""#,
        ] {
            assert!(LeaseRequest::parse(bad).is_err(), "{bad}");
        }
        let g = gpu();
        for bad in [
            "holder=w1 mem_mb=0 ttl_s=1",
            "holder=w1 mem_mb=9000 ttl_s=1",
            "holder=w1 mem_mb=1 ttl_s=0",
            "holder=w1 mem_mb=1 ttl_s=86401",
            "holder=w1 mem_mb=1 ttl_s=1 streams=0",
            "holder=w1 mem_mb=1 ttl_s=1 streams=33",
            "holder=w/1 mem_mb=1 ttl_s=1",
            "holder=w1 mem_mb=1 ttl_s=1 gpu_id=7",
        ] {
            assert!(
                LeaseRequest::parse(bad).unwrap().terms(&g).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn arbitration_by_priority() {
        let mut book = LeaseBook::default();
        assert!(matches!(
            book.request(lease("a", 5), 0),
            Ok(Grant::Granted(_))
        ));
        // Equal and lower priorities wait, ordered by priority then arrival.
        assert_eq!(
            book.request(lease("b", 5), 1),
            Ok(Grant::Waiting { position: 1 })
        );
        assert_eq!(
            book.request(lease("c", 2), 2),
            Ok(Grant::Waiting { position: 2 })
        );
        assert_eq!(
            book.request(lease("d", 4), 3),
            Ok(Grant::Waiting { position: 2 })
        );
        let order: Vec<_> = book.waiting().map(|l| l.holder.as_str()).collect();
        assert_eq!(order, ["b", "d", "c"]);
        // A higher priority preempts.
        match book.request(lease("e", 9), 4) {
            Ok(Grant::Preempted { granted, ended }) => {
                assert_eq!(granted.lease.holder, "e");
                assert_eq!(ended.lease.holder, "a");
            }
            other => panic!("{other:?}"),
        }
        // Release hands over to the first waiting request, TTL from then.
        let h = book.release(None, 100).unwrap().unwrap();
        assert_eq!(h.ended.lease.holder, "e");
        let next = h.next.unwrap();
        assert_eq!((next.lease.holder.as_str(), next.expires_ms), ("b", 10_100));
        // Withdrawing a waiting request.
        assert_eq!(book.release(Some("c"), 101), Ok(None));
        assert!(book.release(Some("zz"), 101).is_err());
        // Lowering the active priority below a waiter lets it preempt.
        assert_eq!(book.set_priority(5, 102), Ok(None));
        let h = book.set_priority(3, 103).unwrap().unwrap();
        assert_eq!(h.why, LeaseEnd::Preempted { by: "d".into() });
        assert_eq!(book.active().unwrap().lease.holder, "d");
    }

    #[test]
    fn waiting_list_is_bounded() {
        let mut book = LeaseBook::default();
        book.request(lease("top", 9), 0).unwrap();
        for i in 0..MAX_WAITING_LEASES {
            book.request(lease(&format!("w{i}"), 1), 0).unwrap();
        }
        let err = book.request(lease("late", 1), 0).unwrap_err();
        assert_eq!(err.reason(), "BUSY");
        // Re-asking replaces a holder's request rather than taking a slot.
        assert!(book.request(lease("w0", 2), 0).is_ok());
    }

    #[test]
    fn expiry_and_renewal() {
        let mut book = LeaseBook::default();
        book.request(lease("a", 1), 1_000).unwrap();
        assert_eq!(book.active().unwrap().expires_ms, 11_000);
        assert_eq!(book.expire(10_999), None);
        assert_eq!(book.renew(Some(20), 10_000).unwrap().expires_ms, 30_000);
        assert_eq!(book.expire(29_999), None);
        assert!(book.renew(Some(0), 10_000).is_err());
        let h = book.expire(30_000).unwrap();
        assert_eq!(h.why, LeaseEnd::Expired);
        assert!(book.active().is_none());
        assert_eq!(book.renew(None, 30_001).unwrap_err().reason(), "EPERM");
    }

    #[test]
    fn same_holder_replaces_terms() {
        let mut book = LeaseBook::default();
        book.request(lease("a", 1), 0).unwrap();
        let id = book.active().unwrap().lease_id;
        match book.request(lease("a", 0), 5_000) {
            Ok(Grant::Replaced(l)) => {
                assert_eq!(
                    (l.lease_id, l.expires_ms, l.lease.priority),
                    (id, 15_000, 0)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
