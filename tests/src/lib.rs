//! Helpers shared by the end-to-end tests: locating the `kefu` binary and the models, running
//! commands, and spawning real servers on `127.0.0.1:0`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `kefu` binary: `KEFU_BIN`, else next to this test executable's profile directory.
pub fn kefu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KEFU_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/kefu
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("kefu"))
        .expect("profile dir");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build --bin kefu)",
        bin.display()
    );
    bin
}

/// The models directory (`KEFU_MODEL_DIR`, else `<workspace>/models`).
pub fn model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"))
}

/// A `kefu` command with its data dir and model dir set.
pub fn kefu(data_dir: &Path) -> Command {
    let mut c = Command::new(kefu_bin());
    c.arg("--data-dir")
        .arg(data_dir)
        .arg("--model-dir")
        .arg(model_dir())
        .env_remove("KEFU_MODEL")
        .env_remove("KEFU_DATA_DIR");
    c
}

/// Runs a command and returns its output.
pub fn run(mut c: Command) -> Output {
    c.output().expect("spawn kefu")
}

/// `kefu ARGS…` against `data_dir`: its stdout; panics with its stderr when it fails.
pub fn kefu_ok(data_dir: &Path, args: &[&str]) -> String {
    let mut c = kefu(data_dir);
    c.args(args);
    let out = run(c);
    assert!(
        out.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `kefu serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `kefu serve --listen 127.0.0.1:0` on `data_dir` and waits until `/readyz` is 200.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts one node on each data directory, all at once (a cluster's nodes sharing `extra`'s
    /// database), and waits until every one is ready.
    pub fn start_together(data_dirs: &[tempfile::TempDir], extra: &[&str]) -> Vec<Server> {
        std::thread::scope(|s| {
            let started: Vec<_> = data_dirs
                .iter()
                .map(|d| s.spawn(|| Server::start(d.path(), extra)))
                .collect();
            started
                .into_iter()
                .map(|h| h.join().expect("node started"))
                .collect()
        })
    }

    /// Starts `kefu serve --listen ADDR` (e.g. the address of a server that was stopped, so
    /// clients reconnect to the same URL).
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut c = kefu(data_dir);
        c.arg("serve")
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn kefu serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("kefu serve exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("kefu listening on ") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let server = Server { child, base };
        server.wait_ready(Duration::from_secs(120));
        server
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        let client = reqwest::blocking::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(start.elapsed() < limit, "server not ready after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port` this server listens on.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws{}/v1/ws", self.base.trim_start_matches("http"))
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

pub mod chat;
pub mod llm;
pub mod qdrant;

/// A fresh PostgreSQL schema in `KEFU_TEST_DATABASE_URL` (default the local `test` database),
/// created with `psql` and dropped on drop, so runs never see each other's rows.
pub struct PgSchema {
    base: String,
    name: String,
    /// The database URL whose `search_path` is this schema.
    pub url: String,
}

impl PgSchema {
    pub fn create() -> PgSchema {
        let base = std::env::var("KEFU_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("kefu_e2e_{}_{}", std::process::id(), nanos % 1_000_000_000);
        let out = psql(&base, &format!("CREATE SCHEMA {name}"));
        assert!(
            out.status.success(),
            "cannot create a schema in {base}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { base, name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

fn psql(base: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(base)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-q")
        .arg("-c")
        .arg(sql)
        .output()
        .expect("psql (PostgreSQL client) must be installed")
}

/// A two-thread tokio runtime for the async parts of a test (servers start outside it).
/// `kefu admin-key` on `data_dir`: a new admin API key (panics if the command fails).
pub fn admin_key(data_dir: &Path) -> String {
    let mut c = kefu(data_dir);
    c.args(["admin-key", "--name", "tests"]);
    let out = run(c);
    assert!(
        out.status.success(),
        "kefu admin-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `kefu [global…] agent add NAME --display-name DISPLAY --password PASSWORD [extra…]`; panics
/// with the command's stderr on failure.
pub fn add_agent(
    data_dir: &Path,
    global: &[&str],
    name: &str,
    display: &str,
    password: &str,
    extra: &[&str],
) {
    let mut c = kefu(data_dir);
    c.args(global)
        .args([
            "agent",
            "add",
            name,
            "--display-name",
            display,
            "--password",
            password,
        ])
        .args(extra);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a client test script (Python, Kotlin, Node) against `server`, serving its restart
/// requests: the script prints `STOP` (answered `STOPPED` once the server exited after SIGTERM)
/// and `START` (answered `STARTED` once it is ready again on the same address). Panics with the
/// script's output unless it exits successfully after printing `PASS`.
pub fn drive_script(mut cmd: Command, server: &mut Server, data_dir: &Path, extra: &[&str]) {
    use std::io::Write;
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let addr = server.addr();
    let mut out = String::new();
    let mut passed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read script stdout");
        out.push_str(&line);
        out.push('\n');
        match line.trim() {
            "STOP" => {
                server.terminate();
                writeln!(stdin, "STOPPED").expect("answer STOP");
            }
            "START" => {
                *server = Server::start_on(data_dir, &addr, extra);
                writeln!(stdin, "STARTED").expect("answer START");
            }
            "PASS" => passed = true,
            _ => {}
        }
    }
    let status = child.wait().expect("wait for the script");
    let err = err_reader.join().unwrap_or_default();
    assert!(
        status.success() && passed,
        "{what} failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    eprintln!("{err}");
}
