//! An echo client: connects, sends a message on a bidirectional stream,
//! prints what comes back, and closes.
//!
//! ```sh
//! cargo run -p quiver --example echo_client -- [SERVER_ADDR] [MESSAGE...]
//! ```
//!
//! Defaults: `127.0.0.1:4433` and "hello". It trusts the certificate that
//! `echo_server` wrote (`quiver-echo-cert.der` in the temporary directory,
//! or the DER file named by `QUIVER_ECHO_CERT`) and checks it against the
//! name "localhost".

use std::net::SocketAddr;
use std::path::PathBuf;

use quiver::rustls::RootCertStore;
use quiver::rustls::pki_types::CertificateDer;
use quiver::{ClientConfig, Endpoint, VarInt};

/// The application protocol (ALPN) both examples speak.
const ALPN: &[u8] = b"quiver-echo";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A client endpoint on an ephemeral port trusting only `server_cert`.
pub fn endpoint(server_cert: CertificateDer<'static>) -> Result<Endpoint, Error> {
    let mut roots = RootCertStore::empty();
    roots.add(server_cert)?;
    let mut endpoint = Endpoint::client("0.0.0.0:0".parse()?)?;
    endpoint.set_default_client_config(
        ClientConfig::with_root_certificates(roots)
            .alpn_protocols(&[ALPN])
            .build()?,
    );
    Ok(endpoint)
}

/// Connects to `server` (whose certificate must be for "localhost"),
/// sends `message` on one stream and returns the echo (at most 1 MiB),
/// then closes the connection and waits until the server has seen it.
pub async fn echo(
    endpoint: &Endpoint,
    server: SocketAddr,
    message: &[u8],
) -> Result<Vec<u8>, Error> {
    let connection = endpoint.connect(server, "localhost")?.await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    // Reading while writing: a long message is echoed while it is being
    // sent, and the server's replies must be read for it to go on.
    let (written, answer) = tokio::join!(
        async {
            send.write_all(message).await?;
            send.finish()?;
            Ok::<_, Error>(())
        },
        recv.read_to_end(1 << 20)
    );
    written?;
    let answer = answer?;
    connection.close(VarInt::from_u32(0), b"bye");
    endpoint.wait_idle().await;
    Ok(answer)
}

#[allow(dead_code)] // The integration test includes this file as a module.
#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:4433").parse()?;
    let words: Vec<String> = args.collect();
    let message = if words.is_empty() {
        "hello".to_owned()
    } else {
        words.join(" ")
    };
    let cert_path = std::env::var_os("QUIVER_ECHO_CERT").map_or_else(
        || std::env::temp_dir().join("quiver-echo-cert.der"),
        PathBuf::from,
    );
    let cert = std::fs::read(&cert_path)
        .map_err(|e| format!("{}: {e} (start echo_server first)", cert_path.display()))?;
    let cert = CertificateDer::from(cert);
    let endpoint = endpoint(cert)?;
    let answer = echo(&endpoint, server, message.as_bytes()).await?;
    println!("{}", String::from_utf8_lossy(&answer));
    Ok(())
}
