//! The suite's own PostgreSQL 15 instance: `initdb` in a temporary directory owned by the
//! postgres user, a server on a free loopback port (its socket in that directory), crashed
//! with `pg_ctl stop -m immediate` and started again on the same data and port. Stopped
//! and removed when dropped, also on a panic.
//!
//! Must not: touch the machine's own server (5432) — nothing here uses its port, data
//! directory or socket directory — or skip: a missing `initdb` is a failed suite.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::processes::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";
const USER: &str = "postgres";

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb, then start; panics loudly if PostgreSQL 15 is not installed.
    pub fn start() -> Self {
        let initdb = Path::new(BIN).join("initdb");
        assert!(
            initdb.exists(),
            "FATAL: {} is missing: the fault suite needs PostgreSQL 15's server binaries \
             (Debian: apt-get install postgresql-15) to run its own instance",
            initdb.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("faults-pg-")
            .tempdir()
            .unwrap();
        let (uid, gid) = crate::system_user(USER);
        chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let pg = Self {
            port: free_port(),
            dir,
        };
        // --no-sync: initdb's own fsyncs only; the server keeps PostgreSQL's defaults.
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                USER,
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on its data directory and port; returns once it accepts
    /// connections (`pg_ctl -w`).
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &options,
                "-l",
                &self.log().display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// `-m immediate`: every server process quits at once, no checkpoint — a crash, which
    /// the next start recovers from the WAL.
    pub fn crash(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// The server is running (`pg_ctl status`).
    pub fn is_up(&self) -> bool {
        self.command(
            "pg_ctl",
            &["-D", &self.data().display().to_string(), "status"],
        )
        .status
        .success()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn command(&self, tool: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", USER, "--"])
            .arg(Path::new(BIN).join(tool))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("runuser {tool}: {e}"))
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n{}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            crate::support::processes::tail(&self.log(), 20, "PostgreSQL")
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
