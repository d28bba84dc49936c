//! Ring buffers → decoded kernel records, in kernel-time order.
//!
//! Three ring buffers keep a flood of lifecycle events, or of cheap attempts (failed opens,
//! refused namespace calls), from crowding out namespace events. Events of one process can sit
//! in all three, so each wake-up drains the critical buffer first and then the others, and
//! merges them by kernel timestamp: every other event older than a drained critical event has
//! been submitted before it and is in the same batch.

use std::{collections::BTreeMap, os::fd::AsRawFd};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf},
};
use escapewatch_common::{
    kind::KIND_SLOTS,
    maps::{
        ATTEMPT_BUDGET, AttemptBudget, AttemptKey, BUDGETED_BY_KIND, LOST_BY_KIND, PROGRAM_ERRORS,
        PROGRAM_SLOTS, RING_ATTEMPTS, RING_CRITICAL, RING_LIFECYCLE,
    },
    user::{DecodeError, RawEvent, decode},
};
use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("map {name} is missing from the eBPF object")]
    MissingMap { name: &'static str },
    #[error("map {name} has an unexpected type")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot register ring buffer {name} with the event loop")]
    Register {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub struct Collector {
    critical: AsyncFd<RingBuf<MapData>>,
    lifecycle: AsyncFd<RingBuf<MapData>>,
    attempts: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    errors: PerCpuArray<MapData, u64>,
    budgeted: PerCpuArray<MapData, u64>,
    budgets: HashMap<MapData, AttemptKey, AttemptBudget>,
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, CollectError> {
    ebpf.take_map(name).ok_or(CollectError::MissingMap { name })
}

fn per_cpu(ebpf: &mut Ebpf, name: &'static str) -> Result<PerCpuArray<MapData, u64>, CollectError> {
    PerCpuArray::try_from(take(ebpf, name)?).map_err(|source| CollectError::Map { name, source })
}

fn ring(ebpf: &mut Ebpf, name: &'static str) -> Result<AsyncFd<RingBuf<MapData>>, CollectError> {
    let rb = RingBuf::try_from(take(ebpf, name)?)
        .map_err(|source| CollectError::Map { name, source })?;
    // SAFETY: the RingBuf owns its map fd for its whole life and always reports the same fd;
    // the AsyncFd owns the RingBuf, so the fd outlives the registration.
    unsafe { AsyncFd::register_with_interest(rb, tokio::io::Interest::READABLE) }.map_err(|e| {
        CollectError::Register {
            name,
            source: e.into(),
        }
    })
}

/// Decode failures of one drain, by reason (counted, never fatal).
#[derive(Debug, Default)]
pub struct DrainStats {
    pub decode_errors: Vec<DecodeError>,
}

impl Collector {
    /// Take the maps out of the loaded object (the programs stay attached while `ebpf` lives).
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, CollectError> {
        let critical = ring(ebpf, RING_CRITICAL)?;
        let lifecycle = ring(ebpf, RING_LIFECYCLE)?;
        let attempts = ring(ebpf, RING_ATTEMPTS)?;
        let lost = per_cpu(ebpf, LOST_BY_KIND)?;
        let errors = per_cpu(ebpf, PROGRAM_ERRORS)?;
        let budgeted = per_cpu(ebpf, BUDGETED_BY_KIND)?;
        let budgets =
            HashMap::try_from(take(ebpf, ATTEMPT_BUDGET)?).map_err(|source| CollectError::Map {
                name: ATTEMPT_BUDGET,
                source,
            })?;
        tracing::debug!(
            critical_fd = critical.get_ref().as_raw_fd(),
            lifecycle_fd = lifecycle.get_ref().as_raw_fd(),
            "ring buffers registered"
        );
        Ok(Collector {
            critical,
            lifecycle,
            attempts,
            lost,
            errors,
            budgeted,
            budgets,
        })
    }

    /// Wait until either ring buffer has data.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        tokio::select! {
            guard = self.critical.readable_mut() => guard?.clear_ready(),
            guard = self.lifecycle.readable_mut() => guard?.clear_ready(),
            guard = self.attempts.readable_mut() => guard?.clear_ready(),
        }
        // Readiness is cleared before draining: data submitted after this point wakes us again.
        Ok(())
    }

    /// Move everything available into `out`, ordered by kernel time.
    pub fn drain(&mut self, out: &mut Vec<RawEvent>) -> DrainStats {
        let mut stats = DrainStats::default();
        let start = out.len();
        for rb in [
            self.critical.get_mut(),
            self.lifecycle.get_mut(),
            self.attempts.get_mut(),
        ] {
            while let Some(item) = rb.next() {
                match decode(&item) {
                    Ok(ev) => out.push(ev),
                    Err(e) => stats.decode_errors.push(e),
                }
            }
        }
        out[start..].sort_by_key(|e| e.header().ktime_ns);
        stats
    }

    fn sum(map: &PerCpuArray<MapData, u64>, slots: u32) -> BTreeMap<u32, u64> {
        (0..slots)
            .filter_map(|i| {
                let total: u64 = map.get(&i, 0).ok()?.iter().sum();
                (total > 0).then_some((i, total))
            })
            .collect()
    }

    /// Records lost in the kernel since load, by event kind id (only non-zero entries).
    pub fn lost_by_kind(&self) -> BTreeMap<u32, u64> {
        Self::sum(&self.lost, KIND_SLOTS)
    }

    /// Attempt records the kernel did not send since load because their container was over
    /// budget, by event kind id (only non-zero entries). Exact, whatever the per-container map
    /// evicted.
    pub fn budgeted_by_kind(&self) -> BTreeMap<u32, u64> {
        Self::sum(&self.budgeted, KIND_SLOTS)
    }

    /// The same per (cgroup id, kind) entry of the kernel's budget map: running totals since
    /// each entry was created (an entry the LRU evicted starts again from 0).
    pub fn budgeted_by_cgroup(&self) -> BTreeMap<(u64, u32), u64> {
        self.budgets
            .iter()
            .filter_map(|entry| {
                entry
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "reading the attempt budgets failed"),
                    )
                    .ok()
            })
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(k, b)| ((k.cgroup_id, k.kind), b.suppressed))
            .collect()
    }

    /// Errors inside programs since load, by program id (only non-zero entries).
    pub fn program_errors(&self) -> BTreeMap<u32, u64> {
        Self::sum(&self.errors, PROGRAM_SLOTS)
    }
}
