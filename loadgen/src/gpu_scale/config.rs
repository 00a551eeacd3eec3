//! What one scale run does: the fleet's size, how many leases each step
//! measures, how many bridges the kill test stops. Checked once by
//! [`ScaleConfig::validate`]; the run trusts it.

use super::ScaleError;
use std::path::PathBuf;
use std::time::Duration;

/// Most GPUs one mock bridge serves in a run: a bridge runs a worker
/// thread per GPU, and the run starts every bridge on this machine.
pub const MAX_GPUS_PER_BRIDGE: usize = 64;

/// Default leases measured per kind (any GPU, a named GPU) and step:
/// several hundred, so a p99 rests on a few samples rather than one.
pub const DEFAULT_LEASES: usize = 300;

/// Default time a fresh NineDoor is left alone, after every GPU is listed,
/// before its memory is read: longer than the links' health round (5 s),
/// so each link has read every GPU's `info` once more.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(6);

/// Default deadline of one request to NineDoor and of each wait for a
/// process: far above any healthy answer, short enough that a hung hive
/// does not hang the run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One scale run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleConfig {
    /// Where `ninedoor`, `gpu-bridge-host` and `cohsh` are.
    pub bin_dir: PathBuf,
    /// Bridge processes in the full fleet.
    pub bridges: usize,
    /// Mock GPUs per bridge.
    pub gpus: usize,
    /// Fleet sizes (bridges) at which lease latency is measured; the full
    /// fleet is always one of them.
    pub steps: Vec<usize>,
    /// Leases per kind and step.
    pub leases: usize,
    /// Memory of each measured lease, MiB.
    pub mem_mb: u32,
    /// Bridges killed with SIGKILL in the kill test (0: no kill test).
    pub kill: usize,
    /// Runs of each `cohsh` listing command timed.
    pub repeats: usize,
    /// Quiet time before NineDoor's memory is read.
    pub settle: Duration,
    /// Deadline of one request or wait.
    pub timeout: Duration,
}

impl ScaleConfig {
    /// The run: 100 bridges of 4 GPUs, leases at 1, 10 and 100
    /// bridges, 10 bridges killed; binaries from `bin_dir`.
    pub fn new(bin_dir: PathBuf) -> Self {
        ScaleConfig {
            bin_dir,
            bridges: 100,
            gpus: 4,
            steps: vec![1, 10, 100],
            leases: DEFAULT_LEASES,
            mem_mb: 1024,
            kill: 10,
            repeats: 10,
            settle: DEFAULT_SETTLE,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Refuses a run that cannot be made.
    pub fn validate(&self) -> Result<(), ScaleError> {
        let bad = |why: String| Err(ScaleError::Config(why));
        if self.bridges == 0 || self.bridges > ninedoor::MAX_BRIDGES {
            return bad(format!(
                "--bridges {} is outside 1..={} (NineDoor's limit)",
                self.bridges,
                ninedoor::MAX_BRIDGES
            ));
        }
        if self.gpus == 0 || self.gpus > MAX_GPUS_PER_BRIDGE {
            return bad(format!(
                "--gpus {} is outside 1..={MAX_GPUS_PER_BRIDGE}",
                self.gpus
            ));
        }
        if let Some(s) = self.steps.iter().find(|&&s| s == 0 || s > self.bridges) {
            return bad(format!(
                "--steps: {s} bridges is outside 1..={} (--bridges)",
                self.bridges
            ));
        }
        if self.kill >= self.bridges {
            return bad(format!(
                "--kill {} must leave a bridge alive of {}",
                self.kill, self.bridges
            ));
        }
        if self.leases == 0 || self.repeats == 0 {
            return bad(String::from("--leases and --repeats must be at least 1"));
        }
        if self.mem_mb == 0 {
            return bad(String::from("--mem-mb must be at least 1"));
        }
        Ok(())
    }

    /// The fleet sizes measured, ascending: the steps and the full fleet.
    pub fn lease_steps(&self) -> Vec<usize> {
        let mut steps = self.steps.clone();
        steps.push(self.bridges);
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// The fleet sizes whose NineDoor memory is read: none, then each step.
    pub fn memory_steps(&self) -> Vec<usize> {
        let mut steps = vec![0];
        steps.extend(self.lease_steps());
        steps
    }

    /// The bridges the kill test stops (1-based, `h<N>`): spread evenly
    /// over the fleet, the last bridge among them.
    pub fn killed(&self) -> Vec<usize> {
        (1..=self.kill)
            .map(|j| j * self.bridges / self.kill)
            .collect()
    }

    /// Most live workers the hive is configured with: every GPU held at
    /// once by the kill test's fill, and room to spare (NineDoor's default
    /// is 64, which would refuse the 65th lease held).
    pub fn max_workers(&self) -> usize {
        self.bridges * self.gpus + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ScaleConfig {
        ScaleConfig::new(PathBuf::from("target/release"))
    }

    /// What a case changes in a valid configuration.
    type Change = fn(&mut ScaleConfig);

    #[test]
    fn validation_refuses_runs_that_cannot_be_made() {
        let cases: [(&str, Change, bool); 8] = [
            ("the issue's run", |_| {}, true),
            ("no bridge", |c| c.bridges = 0, false),
            ("past NineDoor's limit", |c| c.bridges = 1025, false),
            ("no GPU", |c| c.gpus = 0, false),
            ("a step past the fleet", |c| c.steps = vec![1, 101], false),
            ("a step of none", |c| c.steps = vec![0], false),
            ("every bridge killed", |c| c.kill = 100, false),
            ("no kill test", |c| c.kill = 0, true),
        ];
        for (name, change, ok) in cases {
            let mut c = base();
            change(&mut c);
            assert_eq!(c.validate().is_ok(), ok, "{name}: {:?}", c.validate());
        }
    }

    #[test]
    fn steps_always_end_with_the_whole_fleet_and_memory_starts_at_none() {
        let mut c = base();
        c.steps = vec![10, 1, 10];
        assert_eq!(c.lease_steps(), [1, 10, 100]);
        assert_eq!(c.memory_steps(), [0, 1, 10, 100]);
    }

    #[test]
    fn killed_bridges_are_spread_over_the_fleet() {
        let c = base();
        assert_eq!(c.killed(), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        let mut small = base();
        small.bridges = 3;
        small.kill = 1;
        assert_eq!(small.killed(), [3]);
        small.kill = 0;
        assert!(small.killed().is_empty());
    }
}
