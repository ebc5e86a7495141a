//! Keep-alive HTTP load generators: `wrk` when installed, else a built-in one on
//! tokio + reqwest (N connections, each sending its next request when the previous
//! answer arrived, for a fixed duration).

use std::{
    io::Write as _,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use super::{
    error::{Error, Result},
    stats::percentile,
};

/// What a load run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadResult {
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests that failed or got another status.
    pub failed: u64,
    /// Successful requests per second.
    pub per_second: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
}

/// The load generator in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// `wrk`, with its version line.
    Wrk(String),
    /// The built-in tokio/reqwest generator.
    BuiltIn,
}

impl Generator {
    /// `wrk` when it runs, else the built-in one.
    pub fn detect() -> Self {
        match Command::new("wrk").arg("--version").output() {
            // `wrk --version` prints its banner and exits with status 1.
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let version = text
                    .lines()
                    .next()
                    .unwrap_or("wrk")
                    .split(" [")
                    .next()
                    .unwrap_or("wrk");
                Self::Wrk(version.trim().to_owned())
            }
            Err(_) => Self::BuiltIn,
        }
    }

    /// The generator's name for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Wrk(version) => version.clone(),
            Self::BuiltIn => "built-in (tokio + reqwest, keep-alive)".to_owned(),
        }
    }
}

/// Runs `wrk -t<threads> -c<connections> -d<duration> --latency` against `url` with
/// the Lua `script`.
pub async fn wrk(
    url: &str,
    script: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let mut file = tempfile::Builder::new()
        .prefix("c19-bench-")
        .suffix(".lua")
        .tempfile()
        .map_err(Error::io("creating the wrk script"))?;
    file.write_all(script.as_bytes())
        .map_err(Error::io("writing the wrk script"))?;
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(file.path())
        .arg(url);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|error| Error::Tool(format!("wrk: {error}")))?
        .map_err(Error::io("running wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    parse_wrk(&text).ok_or_else(|| Error::Tool(format!("cannot read wrk's output:\n{text}")))
}

/// Reads requests/s, latency percentiles and failures from `wrk --latency` output.
fn parse_wrk(text: &str) -> Option<LoadResult> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim_start().strip_prefix(prefix).map(str::trim))
    };
    let total: u64 = text.lines().find_map(|line| {
        let (count, rest) = line.trim_start().split_once(' ')?;
        rest.starts_with("requests in")
            .then(|| count.parse().ok())?
    })?;
    let per_second: f64 = field("Requests/sec:")?.parse().ok()?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?;
    let socket_errors: u64 = field("Socket errors:").map_or(0, |errors| {
        errors
            .split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    let failed = non_2xx + socket_errors;
    let ok_share = if total == 0 {
        0.0
    } else {
        total.saturating_sub(non_2xx) as f64 / total as f64
    };
    Some(LoadResult {
        ok: total.saturating_sub(non_2xx),
        failed,
        per_second: per_second * ok_share,
        p50_ms: wrk_duration_ms(field("50%")?)?,
        p99_ms: wrk_duration_ms(field("99%")?)?,
    })
}

/// `123.45us`, `1.20ms`, `2.00s`, `1.00m` in milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number * scale)
}

/// One request of a built-in run: when it started (µs after the run began), how long
/// it took (µs), and whether it got a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Start, in µs after the run began.
    pub start_us: u64,
    /// Latency in µs.
    pub latency_us: u64,
    /// Whether the answer was 2xx.
    pub ok: bool,
}

/// Builds the `n`th request of a connection.
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs the built-in generator: `connections` keep-alive connections for `duration`,
/// or until `stop` is set. Returns the samples and the moment the run began.
pub async fn builtin(
    make: MakeRequest,
    connections: usize,
    duration: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> Result<(Vec<Sample>, Instant)> {
    let stop = stop.unwrap_or_default();
    super::client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(Error::http("building the load client"))?;
    let began = Instant::now();
    let mut workers = JoinSet::new();
    for connection in 0..connections as u64 {
        let (client, make, stop) = (client.clone(), make.clone(), stop.clone());
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut n = connection << 32;
            while began.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let ok = match make(&client, n).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                samples.push(Sample {
                    start_us: micros(start - began),
                    latency_us: micros(start.elapsed()),
                    ok,
                });
                n += 1;
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(worker) = workers.join_next().await {
        samples.extend(worker.map_err(|error| Error::Tool(format!("load worker: {error}")))?);
    }
    Ok((samples, began))
}

/// Summarises built-in `samples` taken over `elapsed`.
pub fn summarize(samples: &[Sample], elapsed: Duration) -> LoadResult {
    let ok = samples.iter().filter(|sample| sample.ok).count() as u64;
    let mut latencies: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.latency_us as f64 / 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    LoadResult {
        ok,
        failed: samples.len() as u64 - ok,
        per_second: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 5s test @ http://127.0.0.1:3097/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  100.00us   5.00ms   90.00%
    Req/Sec    40.00k     2.00k   45.00k    70.00%
  Latency Distribution
     50%  380.00us
     75%  450.00us
     90%  600.00us
     99%    1.20ms
  400000 requests in 5.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4000
Requests/sec:  80000.00
Transfer/sec:      8.00MB
";

    #[test]
    fn reads_wrk_output() {
        let result = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(result.ok, 396_000);
        assert_eq!(result.failed, 4003);
        assert!(
            (result.per_second - 79_200.0).abs() < 1e-6,
            "{}",
            result.per_second
        );
        assert!((result.p50_ms - 0.38).abs() < 1e-9);
        assert!((result.p99_ms - 1.2).abs() < 1e-9);
    }

    #[test]
    fn wrk_output_without_latency_is_refused() {
        assert_eq!(parse_wrk("Requests/sec: 5\n"), None);
    }

    #[test]
    fn wrk_durations() {
        assert_eq!(wrk_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(wrk_duration_ms("250.00us"), Some(0.25));
        assert_eq!(wrk_duration_ms("1.5x"), None);
    }

    /// A keep-alive HTTP/1.1 server answering `ok` to every request; counts connections.
    async fn tiny_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            buffer.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn the_built_in_generator_keeps_its_connections_alive() {
        let (url, accepted) = tiny_server().await;
        let make: MakeRequest = Arc::new(move |client: &reqwest::Client, _| client.get(&url));
        let (samples, _) = builtin(make, 4, Duration::from_secs(1), None)
            .await
            .unwrap();
        // More requests than connections: at least one connection carried several.
        assert!(samples.len() > 4, "only {} requests", samples.len());
        assert!(samples.iter().all(|sample| sample.ok));
        let connections = accepted.load(Ordering::SeqCst);
        assert!(
            (1..=4).contains(&connections),
            "{connections} connections for 4 workers"
        );
    }

    #[tokio::test]
    async fn the_built_in_generator_stops_when_told() {
        let (url, _) = tiny_server().await;
        let make: MakeRequest = Arc::new(move |client: &reqwest::Client, _| client.get(&url));
        let stop = Arc::new(AtomicBool::new(false));
        let run = tokio::spawn(builtin(
            make,
            2,
            Duration::from_secs(60),
            Some(stop.clone()),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::SeqCst);
        // Far before its 60 s duration.
        let (samples, _) = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the generator did not stop")
            .unwrap()
            .unwrap();
        assert!(!samples.is_empty());
    }

    #[test]
    fn summaries_of_samples_count_only_successes_for_latency() {
        let samples = [
            Sample {
                start_us: 0,
                latency_us: 1000,
                ok: true,
            },
            Sample {
                start_us: 10,
                latency_us: 3000,
                ok: true,
            },
            Sample {
                start_us: 20,
                latency_us: 90_000,
                ok: false,
            },
        ];
        let result = summarize(&samples, Duration::from_secs(2));
        assert_eq!((result.ok, result.failed), (2, 1));
        assert_eq!(result.per_second, 1.0);
        assert_eq!(result.p50_ms, 1.0);
        assert_eq!(result.p99_ms, 3.0);
    }
}
