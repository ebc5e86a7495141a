//! A watchdog on the agents' resident memory: agents that balloon past a limit are
//! killed at once, before they starve the machine (which other work shares), and the
//! scenario reports the peak instead of its figures.

use std::{
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;

use super::machine::{memory_total_bytes, rss_bytes};

/// How often the agents' memory is read.
const EVERY: Duration = Duration::from_millis(200);

/// Watches the summed RSS of some processes until dropped.
#[derive(Debug)]
pub struct MemoryGuard {
    limit: u64,
    peak: Arc<AtomicU64>,
    exceeded: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl MemoryGuard {
    /// Starts watching `pids`. Once their summed RSS passes `limit` bytes, it kills them
    /// all (SIGKILL) and [`MemoryGuard::exceeded`] turns true.
    pub fn start(pids: Vec<u32>, limit: u64) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let exceeded = Arc::new(AtomicBool::new(false));
        let (seen, over) = (peak.clone(), exceeded.clone());
        let task = tokio::spawn(async move {
            loop {
                let total: u64 = pids.iter().filter_map(|&pid| rss_bytes(pid)).sum();
                seen.fetch_max(total, Ordering::Relaxed);
                if total > limit {
                    over.store(true, Ordering::SeqCst);
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .args(pids.iter().map(u32::to_string))
                        .stderr(Stdio::null())
                        .status();
                    return;
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Self {
            limit,
            peak,
            exceeded,
            task,
        }
    }

    /// A quarter of the machine's memory (4 GB when unknown).
    pub fn default_limit() -> u64 {
        memory_total_bytes().map_or(4 << 30, |total| total / 4)
    }

    /// Whether the limit was passed.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// The highest summed RSS seen, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait_until;

    #[tokio::test]
    async fn kills_what_passes_its_limit_and_records_the_peak() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let guard = MemoryGuard::start(vec![child.id()], 1);
        assert!(wait_until(Duration::from_secs(10), || async { guard.exceeded() }).await);
        assert!(guard.peak() > 0);
        let status = child.wait().unwrap();
        assert!(!status.success(), "sleep was not killed: {status}");
    }

    #[tokio::test]
    async fn stays_quiet_below_its_limit() {
        let guard = MemoryGuard::start(vec![std::process::id()], u64::MAX);
        assert!(wait_until(Duration::from_secs(10), || async { guard.peak() > 0 }).await);
        assert!(!guard.exceeded());
    }
}
