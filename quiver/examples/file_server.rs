//! A file server speaking HTTP/0.9 over QUIC, as the QUIC interop runner
//! uses it (ALPN `hq-interop`): the client opens a bidirectional stream,
//! sends `GET /path` and finishes; the server answers with the file's
//! bytes and finishes, or resets the stream (code 0x194) when there is no
//! such file under its root.
//!
//! ```sh
//! cargo run -p quiver --example file_server -- [ROOT_DIR] [LISTEN_ADDR]
//! ```
//!
//! Defaults: the current directory and `127.0.0.1:4433`. It makes a
//! self-signed certificate for "localhost", so fetch with `quiver get`
//! without checking it:
//!
//! ```sh
//! cargo run -p quiver-cli -- get --insecure --out /tmp https://localhost:4433/Cargo.toml
//! ```

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use quiver::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use quiver::{Endpoint, RecvStream, SendStream, ServerConfig, VarInt};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The application protocol: HTTP/0.9 as the QUIC interop runner uses it.
pub const ALPN: &[u8] = b"hq-interop";

/// The stream error code for a missing file (HTTP's 404).
pub const NOT_FOUND: u32 = 0x194;

/// The longest request line read.
const MAX_REQUEST: usize = 4096;

/// A server endpoint on `listen` offering `hq-interop`, with a fresh
/// self-signed certificate for "localhost" and 127.0.0.1 (returned too).
pub fn endpoint(listen: SocketAddr) -> Result<(Endpoint, CertificateDer<'static>), Error> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let config = ServerConfig::with_single_cert(vec![cert.clone()], key)
        .alpn_protocols(&[ALPN])
        .build()?;
    Ok((Endpoint::server(config, listen)?, cert))
}

/// Serves the files under `root` (a canonical path) until the endpoint
/// closes: each connection, and each request, on its own task.
pub async fn serve(endpoint: Endpoint, root: PathBuf) {
    let root = Arc::new(root);
    while let Some(incoming) = endpoint.accept().await {
        let root = root.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            while let Ok((send, recv)) = connection.accept_bi().await {
                let root = root.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(&root, send, recv).await {
                        eprintln!("{e}");
                    }
                });
            }
        });
    }
}

#[allow(dead_code)] // The integration test includes this file as a module.
#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned())).canonicalize()?;
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:4433").parse()?;
    let (endpoint, _cert) = endpoint(listen)?;
    println!("serving {} on {}", root.display(), endpoint.local_addr()?);
    serve(endpoint, root).await;
    Ok(())
}

/// Reads one request and answers it.
async fn answer(root: &Path, mut send: SendStream, mut recv: RecvStream) -> Result<(), Error> {
    let request = recv.read_to_end(MAX_REQUEST).await?;
    let request = String::from_utf8_lossy(&request);
    let Some(path) = request.trim_end().strip_prefix("GET ") else {
        send.reset(VarInt::from_u32(NOT_FOUND))?;
        return Err(format!("not a GET: {request:?}").into());
    };
    let Some(file) = resolve(root, path) else {
        send.reset(VarInt::from_u32(NOT_FOUND))?;
        return Err(format!("no such file {path}").into());
    };
    let mut file = match std::fs::File::open(&file) {
        Ok(f) if f.metadata()?.is_file() => f,
        _ => {
            send.reset(VarInt::from_u32(NOT_FOUND))?;
            return Err(format!("no such file {path}").into());
        }
    };
    println!("GET {path}");
    // Chunks of 64 KiB: memory stays bounded whatever the file's size.
    // (Reads of local files are short; a busy server would read on
    // `tokio::task::spawn_blocking` or with `tokio::fs`.)
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        send.write_all(&buf[..n]).await?;
    }
    send.finish()?;
    Ok(())
}

/// The file under `root` that the request path names, or `None` when the
/// path would leave `root` (`..`, absolute components, symbolic links
/// pointing outside it).
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut file = root.to_path_buf();
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => file.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let file = file.canonicalize().ok()?;
    file.starts_with(root).then_some(file)
}
