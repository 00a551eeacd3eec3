//! [`GpuFile`]: the files of `/gpu/<id>/`, their access kind and mode, the
//! same on the bridge and in NineDoor.

/// How a file of `/gpu/<id>/` is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only (a snapshot or a ring).
    ReadOnly,
    /// Written with one command per write; reads give a state line or the
    /// reply to the fid's last write.
    Control,
    /// Append-only: each write is one record.
    Append,
}

/// A file of `/gpu/<id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuFile {
    /// `info`: the descriptor, live readings and health, one JSON line.
    Info,
    /// `ctl`: `LEASE`, `RELEASE`, `PRIORITY <n>`, `RESET`; a status line back.
    Ctl,
    /// `lease`: the active lease with its usage; writes renew it.
    Lease,
    /// `job`: append-only JSON job descriptors.
    Job,
    /// `status`: job status lines.
    Status,
    /// `stats`: one JSON stats line ([`StatsLine`](crate::StatsLine)).
    Stats,
    /// `result`: one JSON line per recent job result, with the full output.
    Result,
}

impl GpuFile {
    /// Every file, in the order they are listed.
    pub const ALL: [GpuFile; 7] = [
        GpuFile::Info,
        GpuFile::Ctl,
        GpuFile::Lease,
        GpuFile::Job,
        GpuFile::Status,
        GpuFile::Stats,
        GpuFile::Result,
    ];

    /// The files NineDoor forwards to the bridge (every file but `info`,
    /// which NineDoor serves from the descriptor).
    pub const FORWARDED: [GpuFile; 6] = [
        GpuFile::Ctl,
        GpuFile::Lease,
        GpuFile::Job,
        GpuFile::Status,
        GpuFile::Stats,
        GpuFile::Result,
    ];

    /// The file's name.
    pub const fn name(self) -> &'static str {
        match self {
            GpuFile::Info => "info",
            GpuFile::Ctl => "ctl",
            GpuFile::Lease => "lease",
            GpuFile::Job => "job",
            GpuFile::Status => "status",
            GpuFile::Stats => "stats",
            GpuFile::Result => "result",
        }
    }

    /// The file named `name`, if any.
    pub fn from_name(name: &str) -> Option<GpuFile> {
        GpuFile::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How it is used.
    pub const fn access(self) -> Access {
        match self {
            GpuFile::Ctl | GpuFile::Lease => Access::Control,
            GpuFile::Job => Access::Append,
            GpuFile::Info | GpuFile::Status | GpuFile::Stats | GpuFile::Result => Access::ReadOnly,
        }
    }

    /// Whether the file is only read (writes are refused, never forwarded).
    pub const fn read_only(self) -> bool {
        matches!(self.access(), Access::ReadOnly)
    }

    /// Its permission bits.
    pub const fn mode(self) -> u32 {
        match self.access() {
            Access::Control => 0o600,
            Access::Append => 0o644,
            Access::ReadOnly => 0o444,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kinds_and_modes() {
        for f in GpuFile::ALL {
            assert_eq!(GpuFile::from_name(f.name()), Some(f));
        }
        assert_eq!(GpuFile::from_name("nope"), None);
        assert!(!GpuFile::FORWARDED.contains(&GpuFile::Info));
        assert_eq!(GpuFile::Ctl.mode(), 0o600);
        assert_eq!(GpuFile::Job.access(), Access::Append);
        assert!(GpuFile::Stats.read_only() && !GpuFile::Lease.read_only());
    }
}
