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

/// The resident memory of process `pid` that is anonymous (heap, stacks, written copies)
/// and that is file-backed (mostly the pages of its own binary), in bytes.
pub fn rss_parts(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let anon = status_kb(&status, "RssAnon:")?;
    let file = status_kb(&status, "RssFile:")?;
    Some((anon * 1024, file * 1024))
}

/// The CPU time process `pid` has used so far, user and system, in seconds (fields 14
/// and 15 of `/proc/<pid>/stat`, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime of a `/proc/<pid>/stat` line. The name (field 2) is in parentheses and
/// may hold spaces and parentheses itself, so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state): utime and stime are fields 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .filter(|&ticks: &f64| ticks > 0.0)
        .unwrap_or(100.0)
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
        let (anon, file) = rss_parts(std::process::id()).unwrap();
        assert!(anon > 0 && file > 0, "{anon} {file}");
        assert!(anon + file <= rss + 1024 * 1024, "{anon} + {file} vs {rss}");
    }

    #[test]
    fn parses_the_cpu_ticks_after_a_name_with_spaces() {
        let stat = "4242 (c19 (agent) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
            250 75 0 0 20 0 3 0 12345 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("4242 (c19) S 1 2"), None);
        assert!(cpu_seconds(std::process::id()).is_some_and(|s| s >= 0.0));
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
