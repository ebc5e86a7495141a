//! Scenario 4: resident memory per key of one agent holding 100k and 1M keys of
//! ~60-byte values (VmRSS before vs after loading, divided by the keys).

use std::{path::Path, time::Duration};

use super::{
    Outcome, Solo,
    client::{Api, VALUE_BYTES, base, key},
    error::{Error, Result},
    machine::rss_bytes,
    report::{Figure, Target, Unit},
};

/// Keys per `PUT` while loading.
const BATCH: usize = 10_000;
/// Time for the agent to settle (background work, freed buffers) before reading RSS.
const SETTLE: Duration = Duration::from_secs(1);

/// Loads one agent up to each of `levels` keys in turn, reading its RSS at each.
pub async fn run(binary: &Path, levels: &[usize]) -> Result<Outcome> {
    let solo = Solo::start(binary).await?;
    let pid = solo
        .node
        .pid()
        .ok_or_else(|| Error::Timeout("the agent exited".into()))?;
    let agent = base(solo.node.agent_port);
    let api = Api::new()?;
    let rss = || {
        rss_bytes(pid).ok_or_else(|| Error::Io {
            what: format!("reading /proc/{pid}/status"),
            source: std::io::Error::other("no VmRSS line (has the agent exited?)"),
        })
    };
    tokio::time::sleep(SETTLE).await;
    let empty = rss()?;
    let scenario = "memory (1 agent)";
    let mut outcome = Outcome::default();
    let mut loaded = 0;
    for &level in levels {
        api.load(&format!("{agent}/"), "mem", "mem", loaded..level, BATCH)
            .await?;
        loaded = level;
        for i in (0..level).step_by((level / 100).max(1)) {
            if api.value(&agent, &key("mem", i)).await?.is_none() {
                return Err(Error::Answer {
                    what: format!("GET {agent}/{}", key("mem", i)),
                    detail: "a loaded key is missing".into(),
                });
            }
        }
        tokio::time::sleep(SETTLE).await;
        let full = rss()?;
        let per_key = full.saturating_sub(empty) as f64 / level as f64;
        let label = count(level);
        let mut above = Figure::new(
            scenario,
            &format!("RSS per key above the value, {label} keys"),
            Some(per_key - VALUE_BYTES as f64),
            Unit::BytesPerKey,
        )
        .note(format!(
            "value = {VALUE_BYTES} bytes of JSON; key ~10 bytes counted as overhead"
        ));
        if level == 1_000_000 {
            above = above.target(Target::at_most(250.0, "issue 3"));
        }
        outcome.figures.extend([
            Figure::new(
                scenario,
                &format!("RSS per key, {label} keys"),
                Some(per_key),
                Unit::BytesPerKey,
            )
            .note(format!(
                "VmRSS {:.1} MB empty, {:.1} MB loaded",
                empty as f64 / 1e6,
                full as f64 / 1e6
            )),
            above,
        ]);
    }
    Ok(outcome)
}

/// `100k`, `1M`, `20000`.
fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_short() {
        assert_eq!(super::count(1_000_000), "1M");
        assert_eq!(super::count(100_000), "100k");
        assert_eq!(super::count(1234), "1234");
    }
}
