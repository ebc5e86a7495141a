//! The floor of the agent benchmark: `c19-bench-floor`, a bare axum server that answers
//! without a state, loaded exactly as the agent is. Its figures say what HTTP alone
//! costs on this machine, so the agent's figures can be read against them.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    client::base,
    error::{Error, Result},
};
use crate::free_port;

/// The floor binary's name; it is built beside `c19-bench`.
const BINARY: &str = "c19-bench-floor";

/// A running floor server, stopped when dropped.
#[derive(Debug)]
pub struct Floor {
    child: Child,
    /// The server's base URL.
    pub url: String,
}

impl Floor {
    /// The floor binary beside this one, if it was built.
    pub fn binary() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let binary = exe.parent()?.join(BINARY);
        binary.exists().then_some(binary)
    }

    /// Starts `binary` on a free port and waits until it answers.
    pub async fn start(binary: &Path) -> Result<Self> {
        let port = free_port();
        let child = Command::new(binary)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .map_err(Error::io(format!("starting {}", binary.display())))?;
        let floor = Self {
            child,
            url: base(port),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if client.get(&floor.url).send().await.is_ok() {
                return Ok(floor);
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "{BINARY} did not answer on {} within 10 s",
                    floor.url
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
