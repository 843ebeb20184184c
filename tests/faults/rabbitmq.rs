//! The suite's own RabbitMQ node: its own node name, AMQP and distribution ports, config
//! file (loopback listener on its port; no plugins, so no management port to collide on),
//! an empty `rabbitmq-env.conf` in place of the machine's (which names the machine's node)
//! and data, log and plugin files in a temporary directory owned by the rabbitmq user. The
//! node runs as that user in a process group of its own, so a crash is one `kill -KILL`
//! of the group; it starts again on the same data (quorum queues recover from their log).
//! Killed and removed when dropped, also on a panic.
//!
//! Must not: touch the machine's node (rabbit@localhost, 5672): nothing here uses its
//! name, ports or files; the shared epmd is only registered with. Must not skip: a missing
//! `rabbitmq-server` is a failed suite.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::support::processes::{free_port, tail};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const USER: &str = "rabbitmq";
/// The rabbitmq user's home: its Erlang cookie is there.
const HOME: &str = "/var/lib/rabbitmq";
/// A cold node takes ~5 s here, far longer on a loaded machine.
const BOOT_WITHIN: Duration = Duration::from_secs(90);

pub struct Rabbit {
    pub port: u16,
    node: String,
    dist_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Rabbit {
    /// Starts a fresh node and waits until it accepts AMQP connections as guest; panics
    /// loudly if RabbitMQ is not installed.
    pub async fn start() -> Self {
        assert!(
            Path::new(SERVER).exists(),
            "FATAL: {SERVER} is missing: the fault suite needs rabbitmq-server \
             (Debian: apt-get install rabbitmq-server) to run its own node"
        );
        let dir = tempfile::Builder::new()
            .prefix("faults-rabbit-")
            .tempdir()
            .unwrap();
        let port = free_port();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "").unwrap();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        let (uid, gid) = crate::system_user(USER);
        for entry in walk(dir.path()) {
            chown(entry, Some(uid), Some(gid)).unwrap();
        }
        let mut node = Self {
            port,
            node: format!("faults-{}@localhost", std::process::id()),
            dist_port: free_port(),
            child: None,
            dir,
        };
        node.boot().await;
        node
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Kills the whole node at once (SIGKILL to its process group) and waits for it.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the node on its data and waits until it accepts AMQP connections.
    pub async fn boot(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        let d = self.dir.path();
        let path = |p: &str| d.join(p).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stdout_log())
            .unwrap();
        let (uid, gid) = crate::system_user(USER);
        let child = Command::new(SERVER)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", HOME)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            // What the machine's rabbitmq-env.conf sets besides the node name: epmd and
            // distribution on loopback only.
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .current_dir(d)
            .uid(uid)
            .gid(gid)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{SERVER} does not start: {e}"));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + BOOT_WITHIN;
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                Connection::connect(&self.url(), ConnectionProperties::default()),
            )
            .await;
            if let Ok(Ok(conn)) = attempt {
                let _ = conn.close(200, "ready".into()).await;
                return;
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "RabbitMQ node {} not accepting AMQP on port {}: exit status {exited:?}\n{}\n{}",
                    self.node,
                    self.port,
                    tail(&self.stdout_log(), 30, "rabbitmq-server"),
                    tail(&self.node_log(), 30, "the node")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The node's process is alive (it was booted and not crashed since).
    pub fn is_up(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn stdout_log(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    fn node_log(&self) -> PathBuf {
        self.dir
            .path()
            .join("log")
            .join(format!("{}.log", self.node))
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.crash();
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut all = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}
