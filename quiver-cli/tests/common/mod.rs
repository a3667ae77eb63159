//! What the end-to-end tests share: temporary directories, file contents,
//! a running `quiver serve`, and running the binary with a deadline.
#![allow(dead_code)] // each test file uses a subset

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_quiver");
/// The longest any one command may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A directory of its own under the system's temporary directory.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("quiver-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` bytes that differ per `seed` and per position.
pub fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// A running `quiver serve` (or `perf server`), killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub cert: Option<PathBuf>,
    /// The address `serve --preferred-address` printed.
    pub preferred: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `quiver ARGS --listen 127.0.0.1:0` and waits for its address.
pub fn start(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn quiver");
    let stdout = child.stdout.take().unwrap();
    let mut server = Server {
        child,
        port: 0,
        cert: None,
        preferred: None,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // `server` is killed and reaped when a panic here drops it.
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server prints its address");
        if let Some(rest) = line.strip_prefix("certificate: ") {
            server.cert = Some(PathBuf::from(rest.split(' ').next().unwrap()));
        }
        if let Some(rest) = line.strip_prefix("preferred address: ") {
            server.preferred = Some(rest.to_owned());
        }
        if let Some(i) = line.find("listening on 127.0.0.1:") {
            let rest = &line[i + "listening on 127.0.0.1:".len()..];
            server.port = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            return server;
        }
    }
}

pub fn serve(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    start(&args)
}

/// Runs `quiver ARGS` to completion within `limit`; returns its output and
/// how long it took.
pub fn run_with(args: &[&str], envs: &[(&str, &Path)], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quiver");
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (out, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "quiver {args:?} ran longer than {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn run(args: &[&str]) -> Output {
    run_with(args, &[], DEADLINE).0
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that the command failed with exactly one `error:` line, and
/// returns the line.
pub fn one_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    lines[0].to_owned()
}

pub fn url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}/{path}")
}
