//! `interop/runner/run_endpoint.sh`, quiver's endpoint for the QUIC
//! interop runner, run outside docker on loopback: a server and a client
//! per test case, the downloads compared byte for byte with what was
//! served, and exit status 127 for a test case quiver does not support
//! (the runner's contract).

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;

use common::{BIN, TempDir, content};

/// The endpoint script.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../interop/runner/run_endpoint.sh"
);
/// The longest one client may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// A UDP port that was free a moment ago (never in 24000-25999, which CI
/// uses).
fn free_port() -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if !(24000..26000).contains(&port) {
            return port;
        }
    }
}

/// The directories of one test case: /www, /downloads and /certs.
struct Dirs {
    _tmp: TempDir,
    www: PathBuf,
    downloads: PathBuf,
    certs: PathBuf,
}

impl Dirs {
    fn new(name: &str) -> Self {
        let tmp = TempDir::new(&format!("runner-{name}"));
        let www = tmp.path().join("www");
        let downloads = tmp.path().join("downloads");
        let certs = tmp.path().join("certs");
        for d in [&www, &downloads, &certs] {
            std::fs::create_dir_all(d).unwrap();
        }
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(certs.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(certs.join("priv.key"), ck.signing_key.serialize_pem()).unwrap();
        Self {
            _tmp: tmp,
            www,
            downloads,
            certs,
        }
    }

    /// `run_endpoint.sh` with this case's environment.
    fn command(&self, role: &str, testcase: &str, port: u16) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .env("ROLE", role)
            .env("TESTCASE", testcase)
            .env("IN_DOCKER", "0")
            .env("QUIVER", BIN)
            .env("WWW", &self.www)
            .env("DOWNLOADS", &self.downloads)
            .env("CERTS", &self.certs)
            .env("PORT", port.to_string())
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("SSLKEYLOGFILE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }
}

/// The server script, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server role and waits until it listens.
fn start_server(dirs: &Dirs, testcase: &str, port: u16, envs: &[(&str, &str)]) -> Server {
    let mut child = dirs
        .command("server", testcase, port)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn run_endpoint.sh");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
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
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server prints where it listens");
        if line.contains(&format!("listening on 127.0.0.1:{port}")) {
            return server;
        }
    }
}

/// Runs the client role to completion.
fn run_client(
    dirs: &Dirs,
    testcase: &str,
    port: u16,
    urls: &[String],
    envs: &[(&str, &str)],
) -> Output {
    let start = Instant::now();
    let mut child = dirs
        .command("client", testcase, port)
        .env("REQUESTS", urls.join(" "))
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run_endpoint.sh");
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > CLIENT_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "client {testcase} ran longer than {CLIENT_LIMIT:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `quiver SUB --help` lists `option` (as the script checks).
fn has_option(sub: &str, option: &str) -> bool {
    let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .any(|w| w == option)
}

/// One test case: the server gets `server_case`, the client `client_case`
/// (the runner passes different names to each for some cases), the
/// client downloads files of `sizes` and they must match; returns the
/// client's output.
fn case(server_case: &str, client_case: &str, sizes: &[usize], envs: &[(&str, &str)]) -> Output {
    let dirs = Dirs::new(client_case);
    let mut files = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let name = format!("f{i}-{len}");
        let data = content(len, i as u32 + 1);
        std::fs::write(dirs.www.join(&name), &data).unwrap();
        files.push((name, data));
    }
    let port = free_port();
    let _server = start_server(&dirs, server_case, port, envs);
    let urls: Vec<String> = files
        .iter()
        .map(|(name, _)| format!("https://127.0.0.1:{port}/{name}"))
        .collect();
    let out = run_client(&dirs, client_case, port, &urls, envs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client {client_case} failed ({:?}); stderr: {stderr}",
        out.status
    );
    for (name, data) in &files {
        let got = std::fs::read(dirs.downloads.join(name))
            .unwrap_or_else(|e| panic!("{client_case}: {name} not downloaded: {e}"));
        assert!(
            got == *data,
            "{client_case}: {name} differs from what was served"
        );
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn handshake() {
    let out = case("handshake", "handshake", &[1024], &[]);
    assert!(
        stdout(&out).contains("QUIC version: V1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn transfer() {
    case("transfer", "transfer", &[300_000, 200_000, 100_000], &[]);
}

#[test]
fn multiplexing() {
    // The runner passes `transfer` to both for multiplexing; many small
    // files on one connection, more than the server's stream limit.
    let sizes = vec![32; 150];
    case("transfer", "transfer", &sizes, &[]);
}

#[test]
fn retry() {
    case("retry", "retry", &[10_000], &[]);
}

#[test]
fn http3() {
    let out = case("http3", "http3", &[5_000, 10_000, 100_000], &[]);
    assert!(stdout(&out).contains("saved 3 files"), "{}", stdout(&out));
}

#[test]
fn keyupdate() {
    // The runner passes `keyupdate` to the client, `transfer` to the server.
    case("transfer", "keyupdate", &[200_000], &[]);
}

#[test]
fn ecn() {
    case("ecn", "ecn", &[100_000], &[]);
}

#[test]
fn v2() {
    // RFC 9369 via compatible version negotiation (RFC 9368): the client
    // starts in v1 and the server picks v2.
    let out = case("v2", "v2", &[1024], &[]);
    assert!(
        stdout(&out).contains("QUIC version: V2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn multiconnect() {
    // One connection per file: the summary is printed once per `get`.
    let out = case("multiconnect", "multiconnect", &[1024, 2048, 512], &[]);
    assert_eq!(
        stdout(&out).matches("saved 1 file").count(),
        3,
        "{}",
        stdout(&out)
    );
}

#[test]
fn connectionmigration() {
    // The server offers a preferred address; the client (`transfer`) moves
    // there after the handshake, and `-v` says so.
    let out = case(
        "connectionmigration",
        "transfer",
        &[200_000],
        &[("PREFERRED_ADDRESS", "127.0.0.1:0"), ("GET_ARGS", "-v")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("moved to the server's preferred address"),
        "{stderr}"
    );
}

/// Cases that need an option other work adds: run them when this quiver
/// has it, else the script must answer 127.
#[test]
fn optional_cases_run_or_answer_127() {
    for (testcase, option) in [
        ("chacha20", "--cipher"),
        ("resumption", "--resume"),
        ("zerortt", "--0rtt"),
    ] {
        if has_option("get", option) {
            case(testcase, testcase, &[5_000, 10_000], &[]);
        } else {
            let dirs = Dirs::new(testcase);
            for role in ["server", "client"] {
                let out = dirs
                    .command(role, testcase, free_port())
                    .env("REQUESTS", "https://127.0.0.1:1/x")
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(127), "{testcase} as {role}");
            }
        }
    }
}

/// The runner's contract: a test case the endpoint does not know ends
/// with 127, in both roles, at once.
#[test]
fn unknown_case_exits_127() {
    let dirs = Dirs::new("madeup");
    for role in ["server", "client"] {
        for testcase in ["madeup", "", "versionnegotiation"] {
            let out = dirs
                .command(role, testcase, free_port())
                .env("REQUESTS", "https://127.0.0.1:1/x")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(127), "{testcase:?} as {role}");
        }
    }
    let out = dirs
        .command("nobody", "handshake", free_port())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "unknown role");
    assert!(Path::new(SCRIPT).exists());
}
