//! `c19 kv`: reads and writes an agent's data through its HTTP API, as `etcdctl` does
//! for etcd: `get`, `put`, `del`, `ls` and `watch`.
//!
//! The agent is `--agent` (or `C19_AGENT`, default `http://127.0.0.1:3097`); a bearer
//! token comes from `C19_TOKEN` (or `--token`, which shows in the process list). Errors
//! the agent answers are printed as its message, with exit code 1; an agent that cannot
//! be reached or a bad argument exit with 2.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};

use crate::http;

/// What a key may not hold unescaped in a URL path (`/` stays: the agent reads the whole
/// path as the key).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// The first wait before `watch` reconnects; it doubles up to [`MAX_RECONNECT`].
const FIRST_RECONNECT: Duration = Duration::from_millis(200);
const MAX_RECONNECT: Duration = Duration::from_secs(10);
/// The longest event `watch` reads (an entry is at most the agent's body limit).
const MAX_EVENT_BYTES: usize = 64 << 20;

/// Arguments of `c19 kv`.
#[derive(Debug, clap::Args)]
pub struct Kv {
    /// The agent's API URL.
    #[arg(
        long,
        value_name = "URL",
        env = "C19_AGENT",
        default_value = "http://127.0.0.1:3097",
        global = true
    )]
    pub agent: String,
    /// A bearer token for an agent with `auth` (prefer C19_TOKEN: arguments show in the
    /// process list).
    #[arg(long, env = "C19_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The CA bundle (PEM) an `https` agent's certificate must come from.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: KvCommand,
}

/// The `c19 kv` commands.
#[derive(Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Print a key's value (strings as they are, other JSON compact).
    Get {
        /// The key.
        key: String,
        /// Print the whole entry: value, ts and ttl.
        #[arg(long)]
        full: bool,
    },
    /// Write a key.
    Put {
        /// The key.
        key: String,
        /// The value: a string, or JSON with --json.
        value: String,
        /// Time to live in milliseconds.
        #[arg(long, value_name = "MS")]
        ttl: Option<u64>,
        /// Read VALUE as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a key.
    Del {
        /// The key.
        key: String,
    },
    /// List the live keys (under PREFIX), one `key<TAB>value` line each, in key order.
    Ls {
        /// Only keys starting with this.
        prefix: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print one line per change (under PREFIX) as it happens: `put KEY VALUE` or
    /// `del KEY`. Reconnects after a dropped connection, resuming after the last change.
    Watch {
        /// Only keys starting with this.
        prefix: Option<String>,
    },
}

/// Why a command failed, and its exit code.
enum Failure {
    /// The agent refused (exit 1).
    Agent(String),
    /// The agent could not be asked, or the arguments are wrong (exit 2).
    Local(String),
}

/// Runs `c19 kv`.
pub fn main(args: &Kv) -> ExitCode {
    let result = http::block_on(async { Ok(run(args).await) })
        .unwrap_or_else(|error| Err(Failure::Local(error)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Agent(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Local(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path_and_query}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; the body of a success, or the agent's error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, bytes::Bytes), Failure> {
        let response = request.send().await.map_err(|error| {
            Failure::Local(format!("cannot reach the agent at {}: {error}", self.base))
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| Failure::Local(format!("the agent's answer broke off: {error}")))?;
        if status >= 400 && status != 404 {
            return Err(Failure::Agent(http::agent_message(&body)));
        }
        Ok((status, body))
    }
}

fn key_path(key: &str) -> String {
    format!("/{}", utf8_percent_encode(key, PATH))
}

fn query(value: &str) -> String {
    utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn run(args: &Kv) -> Result<(), Failure> {
    let stream = matches!(args.command, KvCommand::Watch { .. });
    let timeout = if stream {
        Duration::ZERO
    } else {
        Duration::from_secs(30)
    };
    let api = Api {
        client: http::client(args.ca.as_deref(), timeout).map_err(Failure::Local)?,
        base: args.agent.trim_end_matches('/').to_owned(),
        token: args.token.clone().filter(|token| !token.is_empty()),
    };
    match &args.command {
        KvCommand::Get { key, full } => {
            let (status, body) = api
                .send(api.request(reqwest::Method::GET, &key_path(key)))
                .await?;
            if status == 404 {
                return Err(Failure::Agent(format!("no such key: {key}")));
            }
            let entry: Value = parse(&body)?;
            if *full {
                println!("{entry}");
            } else {
                println!("{}", shown(&entry["value"]));
            }
        }
        KvCommand::Put {
            key,
            value,
            ttl,
            json,
        } => {
            let value = if *json {
                serde_json::from_str::<Value>(value).map_err(|error| {
                    Failure::Local(format!(
                        "VALUE is not JSON ({error}); leave out --json to write it as a string"
                    ))
                })?
            } else {
                Value::String(value.clone())
            };
            let mut entry = json!({ "value": value });
            if let Some(ttl) = ttl {
                entry["ttl"] = json!(ttl);
            }
            let body = json!({ key.as_str(): entry }).to_string();
            let request = api
                .request(reqwest::Method::PUT, "/")
                .header("content-type", "application/json")
                .body(body);
            api.send(request).await?;
        }
        KvCommand::Del { key } => {
            api.send(api.request(reqwest::Method::DELETE, &key_path(key)))
                .await?;
        }
        KvCommand::Ls { prefix, limit } => {
            let mut path = String::from("/?");
            if let Some(prefix) = prefix {
                path.push_str(&format!("prefix={}&", query(prefix)));
            }
            if let Some(limit) = limit {
                path.push_str(&format!("limit={limit}"));
            }
            let (_, body) = api
                .send(api.request(reqwest::Method::GET, path.trim_end_matches(['&', '?'])))
                .await?;
            let listing: serde_json::Map<String, Value> = parse(&body)?;
            for (key, entry) in listing {
                println!("{key}\t{}", entry["value"]);
            }
        }
        KvCommand::Watch { prefix } => watch(&api, prefix.as_deref()).await?,
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|error| {
        Failure::Local(format!(
            "the agent's answer is not the JSON expected: {error}"
        ))
    })
}

/// A value as `get` prints it: strings as they are, other JSON compact.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Streams changes until the process is stopped, reconnecting with `Last-Event-ID`.
async fn watch(api: &Api, prefix: Option<&str>) -> Result<(), Failure> {
    let mut path = String::from("/?watch=true");
    if let Some(prefix) = prefix {
        path.push_str(&format!("&prefix={}", query(prefix)));
    }
    let mut last_id: Option<String> = None;
    let mut wait = FIRST_RECONNECT;
    loop {
        let mut request = api.request(reqwest::Method::GET, &path);
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                wait = FIRST_RECONNECT;
                stream(response, &mut last_id).await;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                // Refusals do not heal by waiting; an agent shutting down does.
                if status.is_client_error() {
                    return Err(Failure::Agent(http::agent_message(&body)));
                }
                eprintln!("c19 kv watch: the agent answered {status}; reconnecting");
            }
            Err(error) => eprintln!("c19 kv watch: {error}; reconnecting"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT);
    }
}

/// Prints the events of one stream until it ends; keeps the id of the last one.
async fn stream(mut response: reqwest::Response, last_id: &mut Option<String>) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut event = Event::default();
    while let Ok(Some(chunk)) = response.chunk().await {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                event.dispatch(last_id);
                event = Event::default();
            } else if let Some(id) = line.strip_prefix("id:") {
                event.id = Some(id.trim_start().to_owned());
            } else if let Some(data) = line.strip_prefix("data:") {
                event.data.push_str(data.trim_start());
            } else if let Some(kind) = line.strip_prefix("event:") {
                event.kind = kind.trim_start().to_owned();
            }
        }
        if buffer.len() > MAX_EVENT_BYTES {
            eprintln!("c19 kv watch: an event longer than {MAX_EVENT_BYTES} bytes; reconnecting");
            return;
        }
    }
}

/// One Server-Sent Event being read.
#[derive(Default)]
struct Event {
    kind: String,
    id: Option<String>,
    data: String,
}

impl Event {
    fn dispatch(&self, last_id: &mut Option<String>) {
        let Ok(data) = serde_json::from_str::<Value>(&self.data) else {
            return;
        };
        if self.kind == "error" {
            // Fell behind: resume from where the agent says.
            if let Some(id) = data["last_event_id"].as_str() {
                *last_id = Some(id.to_owned());
            }
            eprintln!(
                "c19 kv watch: {}; resuming",
                data["error"].as_str().unwrap_or("dropped")
            );
            return;
        }
        if let Some(id) = &self.id {
            *last_id = Some(id.clone());
        }
        let key = data["key"].as_str().unwrap_or_default();
        if data["deleted"] == json!(true) || data["expired"] == json!(true) {
            println!("del {key}");
        } else {
            println!("put {key} {}", data["value"]);
        }
    }
}
