//! [`BridgeTarget`]: where a GPU bridge is (`[PREFIX=]HOST:PORT`), parsed
//! once for both homes: the host daemon's configuration and the
//! `/queen/ctl` `bridge` command the `no_std` hive checks.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

/// The longest prefix: short enough that `PREFIX-<id>` stays a valid GPU
/// id for any id a bridge lists up to 47 bytes.
pub const MAX_PREFIX_LEN: usize = 16;

/// The longest `HOST:PORT` accepted: a DNS name (253) and a port.
pub const MAX_ADDR_LEN: usize = 260;

/// Where a bridge is: `[PREFIX=]HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BridgeTarget {
    /// Put before the bridge's GPU ids (`PREFIX-<id>`) in `/gpu`.
    pub prefix: Option<String>,
    /// `host:port`.
    pub addr: String,
}

impl core::fmt::Display for BridgeTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "{p}={}", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

impl core::str::FromStr for BridgeTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, addr) = match s.split_once('=') {
            Some((p, a)) => (Some(p), a),
            None => (None, s),
        };
        if let Some(p) = prefix {
            let ok = !p.is_empty()
                && p.len() <= MAX_PREFIX_LEN
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!(
                    "bridge prefix {p:?} is not 1 to {MAX_PREFIX_LEN} of [A-Za-z0-9_]"
                ));
            }
        }
        let port = addr.rsplit_once(':').map(|(_, p)| p);
        let printable = addr.bytes().all(|b| b.is_ascii_graphic());
        if addr.is_empty()
            || addr.len() > MAX_ADDR_LEN
            || !printable
            || port.is_none_or(|p| p.parse::<u16>().is_err())
        {
            return Err(format!("bridge address {addr:?} is not HOST:PORT"));
        }
        Ok(BridgeTarget {
            prefix: prefix.map(String::from),
            addr: addr.to_owned(),
        })
    }
}

impl BridgeTarget {
    /// The id in `/gpu` of the bridge's GPU `remote`.
    pub fn local_id(&self, remote: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}-{remote}"),
            None => remote.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BridgeTarget;

    #[test]
    fn bridge_targets_parse() {
        let t: BridgeTarget = "127.0.0.1:5650".parse().unwrap();
        assert_eq!(
            (t.prefix.clone(), t.addr.as_str()),
            (None, "127.0.0.1:5650")
        );
        let t: BridgeTarget = "h1=gpu-host:5650".parse().unwrap();
        assert_eq!(t.prefix.as_deref(), Some("h1"));
        assert_eq!(t.local_id("0"), "h1-0");
        assert_eq!(t.to_string(), "h1=gpu-host:5650");
        for bad in [
            "", "host", "host:x", "=h:1", "a-b=h:1", "h:99999", "h h:1", "h:1\n",
        ] {
            assert!(bad.parse::<BridgeTarget>().is_err(), "{bad}");
        }
    }
}
