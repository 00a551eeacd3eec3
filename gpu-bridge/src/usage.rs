//! Per-lease attribution: what each lease's jobs used of its GPU (GPU
//! time, peak memory, energy), kept for the active lease and the most
//! recent ended ones ([`USAGE_KEPT`]). A job is charged to the lease it was
//! dispatched under, even if it finishes after that lease ended (a running
//! job is not stopped by a release). Energy is the GPU's energy counter
//! read when the job was dispatched and again at the first reading after
//! its outcome.

use crate::limits::USAGE_KEPT;
use gpu_contract::LeaseUsage;
use std::collections::BTreeMap;

/// A job whose energy is settled at the next reading.
#[derive(Debug, Clone, Copy)]
struct Unsettled {
    lease_id: u64,
    energy_start: Option<u64>,
}

/// The usage of recent leases of one GPU.
#[derive(Debug, Clone, Default)]
pub struct UsageBook {
    leases: BTreeMap<u64, LeaseUsage>,
    unsettled: Vec<Unsettled>,
}

impl UsageBook {
    fn entry(&mut self, lease_id: u64, holder: &str) -> &mut LeaseUsage {
        if !self.leases.contains_key(&lease_id) && self.leases.len() >= USAGE_KEPT {
            self.leases.pop_first();
        }
        self.leases.entry(lease_id).or_insert_with(|| LeaseUsage {
            lease_id,
            holder: String::from(holder),
            ..LeaseUsage::default()
        })
    }

    /// A job of lease `lease_id` reached an executor; `mem_in_use` is the
    /// declared memory of every running job of the lease, it included.
    pub fn dispatched(&mut self, lease_id: u64, holder: &str, mem_in_use: u64) {
        let u = self.entry(lease_id, holder);
        u.jobs += 1;
        u.peak_mem_mib = u.peak_mem_mib.max(mem_in_use);
    }

    /// A job of lease `lease_id` came back after `gpu_time_us`; its energy
    /// is settled at the next [`UsageBook::settle`].
    pub fn finished(&mut self, lease_id: u64, gpu_time_us: u64, energy_start: Option<u64>) {
        if let Some(u) = self.leases.get_mut(&lease_id) {
            u.gpu_time_us = u.gpu_time_us.saturating_add(gpu_time_us);
        }
        self.unsettled.push(Unsettled {
            lease_id,
            energy_start,
        });
    }

    /// Charges finished jobs the energy used since their dispatch, the
    /// counter now reading `energy`. Where either reading is missing the
    /// lease's energy becomes unknown (`null`), never a guess.
    pub fn settle(&mut self, energy: Option<u64>) {
        for job in std::mem::take(&mut self.unsettled) {
            let Some(u) = self.leases.get_mut(&job.lease_id) else {
                continue;
            };
            u.energy_mj = match (job.energy_start, energy) {
                (Some(a), Some(b)) if u.jobs == 1 || u.energy_mj.is_some() => {
                    Some(u.energy_mj.unwrap_or(0).saturating_add(b.saturating_sub(a)))
                }
                _ => None,
            };
        }
    }

    /// Raises lease `lease_id`'s peak to `mib` (what NVML saw the bridge's
    /// process hold while the lease's job ran).
    pub fn observed(&mut self, lease_id: u64, mib: u64) {
        if let Some(u) = self.leases.get_mut(&lease_id) {
            u.peak_mem_mib = u.peak_mem_mib.max(mib);
        }
    }

    /// The usage of lease `lease_id` (zeros if none of its jobs ran yet).
    pub fn of(&self, lease_id: u64, holder: &str) -> LeaseUsage {
        self.leases
            .get(&lease_id)
            .cloned()
            .unwrap_or_else(|| LeaseUsage {
                lease_id,
                holder: String::from(holder),
                ..LeaseUsage::default()
            })
    }

    /// Every lease kept, newest first.
    pub fn recent(&self) -> impl Iterator<Item = &LeaseUsage> {
        self.leases.values().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_jobs_to_their_lease() {
        let mut b = UsageBook::default();
        b.dispatched(1, "w1", 64);
        b.finished(1, 30_000, Some(1_000));
        b.settle(Some(10_000));
        b.dispatched(1, "w1", 128);
        b.finished(1, 20_000, Some(10_000));
        b.settle(Some(16_000));
        let u = b.of(1, "w1");
        assert_eq!(
            (u.jobs, u.gpu_time_us, u.peak_mem_mib, u.energy_mj),
            (2, 50_000, 128, Some(15_000))
        );
        // A job without an energy reading makes the figure unknown.
        b.dispatched(1, "w1", 1);
        b.finished(1, 1, None);
        b.settle(Some(20_000));
        assert_eq!(b.of(1, "w1").energy_mj, None);
        assert_eq!(b.of(7, "w7").jobs, 0);
        for id in 2..(USAGE_KEPT as u64 + 5) {
            b.dispatched(id, "w", 1);
        }
        assert_eq!(b.recent().count(), USAGE_KEPT);
        assert_eq!(b.recent().next().unwrap().lease_id, USAGE_KEPT as u64 + 4);
    }
}
