//! The service as real processes of the binary, for the tests that split it into roles
//! (`tests/api/multiprocess.rs`, `tests/faults`): each process is started with exactly the
//! environment its caller gives (nothing inherited), keeps its two ports — `PORT` and
//! `OPS_PORT` — across restarts (a restarted web is where Twilio and the watchdog still
//! point), writes its log to a file of
//! its own, and is awaited until `/ready` answers 200 — or reported with its last log lines
//! when it exits or never gets ready, so a failure on a loaded CI machine is not a mystery.
//! Every process still running is killed when the set is dropped, also on a panic.
//!
//! Must not: choose the processes' configuration (callers do), or wait without a bound.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a process may take to answer `/ready` 200 (a cold start on a busy 2-core
/// machine runs migrations and connects to the store and the broker).
const READY_WITHIN: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Named processes of one binary.
pub struct Processes {
    bin: PathBuf,
    children: HashMap<String, Child>,
    ports: HashMap<String, u16>,
    ops_ports: HashMap<String, u16>,
    http: reqwest::Client,
    log_dir: PathBuf,
    /// `None` once the logs are kept past the test.
    logs: Option<tempfile::TempDir>,
}

impl Processes {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        let logs = tempfile::Builder::new()
            .prefix("lead-agent-logs-")
            .tempdir()
            .unwrap();
        Self {
            bin: bin.into(),
            children: HashMap::new(),
            ports: HashMap::new(),
            ops_ports: HashMap::new(),
            http: reqwest::Client::new(),
            log_dir: logs.path().to_path_buf(),
            logs: Some(logs),
        }
    }

    /// The port `name` listens on: chosen at its first start, the same at every restart.
    pub fn port(&mut self, name: &str) -> u16 {
        *self.ports.entry(name.to_string()).or_insert_with(free_port)
    }

    pub fn url(&mut self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(name))
    }

    /// The ops listener's port of `name` (`OPS_PORT`), kept like [`Self::port`].
    pub fn ops_port(&mut self, name: &str) -> u16 {
        *self
            .ops_ports
            .entry(name.to_string())
            .or_insert_with(free_port)
    }

    /// The base URL of `name`'s ops listener: /ops, /ops/*, /metrics.
    pub fn ops_url(&mut self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ops_port(name))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `name` (`bin args…` with only `env`, plus `PORT` and `OPS_PORT`) and returns
    /// at once; its
    /// stdout and stderr are appended to its log.
    pub fn start<'a>(
        &mut self,
        name: &str,
        args: &[&str],
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        assert!(
            !self.is_running(name),
            "{name} is already running: stop it before starting it again"
        );
        let port = self.port(name);
        let ops_port = self.ops_port(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .envs(env)
            .env("PORT", port.to_string())
            .env("OPS_PORT", ops_port.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.bin.display()));
        self.children.insert(name.to_string(), child);
    }

    /// [`Self::start`], then waits until `/ready` answers 200; returns the base URL.
    pub async fn start_ready<'a>(
        &mut self,
        name: &str,
        args: &[&str],
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        self.start(name, args, env);
        self.wait_ready(name).await
    }

    /// Waits until `name` answers `/ready` 200; panics with its exit status, its last
    /// `/ready` answer and its log's tail if it exits or is not ready in time.
    pub async fn wait_ready(&mut self, name: &str) -> String {
        let url = self.url(name);
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            let last = match self.http.get(format!("{url}/ready")).send().await {
                Ok(r) if r.status() == 200 => return url,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => format!("no answer: {e}"),
            };
            let exited = self.exit_status(name);
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "{name} not ready: exit status {exited:?}, last /ready: {last}\n{}",
                    self.log_tail(name, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.get(name).map(Child::id)
    }

    /// The name of the running process with this pid.
    pub fn name_of(&self, pid: u32) -> Option<String> {
        self.children
            .iter()
            .find(|(_, c)| c.id() == pid)
            .map(|(n, _)| n.clone())
    }

    /// `Some` once `name` has exited (or was never started).
    pub fn exit_status(&mut self, name: &str) -> Option<ExitStatus> {
        match self.children.get_mut(name) {
            Some(child) => child.try_wait().unwrap(),
            None => Some(ExitStatus::default()),
        }
    }

    pub fn is_running(&mut self, name: &str) -> bool {
        self.children.contains_key(name) && self.exit_status(name).is_none()
    }

    /// Sends `signal` (`-KILL`, `-TERM`…) to `name` and waits until it has exited.
    pub fn signal(&mut self, name: &str, signal: &str) {
        let child = self
            .children
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name} is not a known process"));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {name}");
        child.wait().unwrap();
        self.children.remove(name);
    }

    /// The last `lines` lines of `name`'s log, newest first, under a heading.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        tail(&self.log_path(name), lines, name)
    }

    /// Keeps the logs after the test instead of deleting them; returns their directory.
    pub fn keep_logs(&mut self) -> PathBuf {
        if let Some(logs) = self.logs.take() {
            let _ = logs.keep();
        }
        self.log_dir.clone()
    }
}

/// The last `lines` lines of the file at `path`, newest first, headed by `what`.
pub fn tail(path: &Path, lines: usize, what: &str) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(lines).collect();
    format!(
        "last {} lines of {what}'s log ({}), newest first:\n{}",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
