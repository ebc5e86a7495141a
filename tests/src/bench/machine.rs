//! What the benchmarks ran on, and the `/proc` readings they take: resident memory of
//! an agent and the byte counter of the loopback interface.

use std::{fs, process::Command};

use serde_json::{Value, json};

/// The environment variable set on `c19-bench` when it re-executed itself in a private
/// network namespace, where the loopback counters count only the benchmark's traffic.
pub const NETNS_ENV: &str = "C19_BENCH_NETNS";

/// The machine a run measured.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// CPUs available to the process.
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Total memory in MB.
    pub memory_mb: u64,
    /// The kernel release.
    pub kernel: String,
    /// The load generator used for the agent throughput (`wrk 4.1.0` or `built-in`).
    pub load_generator: String,
    /// Whether on-the-wire bytes were counted (private network namespace).
    pub wire_bytes: bool,
}

impl Machine {
    /// Reads the machine's description; `load_generator` is filled in later.
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v)
            })
            .map_or_else(|| "unknown".to_owned(), |model| model.trim().to_owned());
        let memory_mb = memory_total_bytes().unwrap_or(0) >> 20;
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| release.trim().to_owned())
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            memory_mb,
            kernel,
            load_generator: String::new(),
            wire_bytes: in_private_netns(),
        }
    }

    /// The description as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "cpu": self.cpu,
            "memory_mb": self.memory_mb,
            "kernel": self.kernel,
            "load_generator": self.load_generator,
            "wire_bytes": self.wire_bytes,
        })
    }
}

/// Whether this process runs in the private network namespace `c19-bench` set up.
pub fn in_private_netns() -> bool {
    std::env::var_os(NETNS_ENV).is_some()
}

/// Whether `unshare --net` works here (root or user namespaces allowed).
pub fn can_unshare_net() -> bool {
    Command::new("unshare")
        .args(["--net", "sh", "-c", "ip link set lo up"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kb(&status, "VmRSS:").map(|kb| kb * 1024)
}

/// The machine's total memory in bytes (`MemTotal` of `/proc/meminfo`).
pub fn memory_total_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    status_kb(&meminfo, "MemTotal:").map(|kb| kb * 1024)
}

/// Bytes sent on the loopback interface since it came up (`/proc/net/dev`), counting
/// every packet once with its TCP/IP headers. Only meaningful in a private namespace.
pub fn loopback_bytes() -> Option<u64> {
    let dev = fs::read_to_string("/proc/net/dev").ok()?;
    parse_loopback_tx(&dev)
}

fn parse_loopback_tx(dev: &str) -> Option<u64> {
    let line = dev
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("lo:"))?;
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit bytes.
    line.split_whitespace().nth(8)?.parse().ok()
}

/// The number of kB on the line of `/proc` text that starts with `field`.
fn status_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_resident_memory() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(
            rss > 100 * 1024,
            "a running test process holds more than 100 KB: {rss}"
        );
    }

    #[test]
    fn parses_the_loopback_transmit_counter() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:  123456     789    0    0    0     0          0         0   654321     987    0    0    0     0       0          0\n  \
            eth0: 1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n";
        assert_eq!(parse_loopback_tx(dev), Some(654_321));
        assert_eq!(parse_loopback_tx("eth0: 1 2 3"), None);
    }

    #[test]
    fn machine_description_names_the_cpu() {
        let machine = Machine::detect();
        assert!(machine.cpus >= 1);
        assert!(!machine.cpu.is_empty());
    }
}
