//! An echo server: every bidirectional stream a client opens gets back
//! what the client sends on it, until the client finishes its side.
//!
//! ```sh
//! cargo run -p quiver --example echo_server -- [LISTEN_ADDR] [CERT_DER_OUT]
//! ```
//!
//! Defaults: `127.0.0.1:4433`, and the self-signed certificate it makes
//! for "localhost" is written to `quiver-echo-cert.der` in the temporary
//! directory, where `echo_client` looks for it. Ctrl-C stops it. Try it
//! with `cargo run -p quiver --example echo_client -- 127.0.0.1:4433 hello`.

use std::net::SocketAddr;
use std::path::PathBuf;

use quiver::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use quiver::{Connection, Endpoint, ServerConfig};

/// The application protocol (ALPN) both examples speak.
pub const ALPN: &[u8] = b"quiver-echo";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A self-signed certificate for "localhost" and 127.0.0.1 (DER, which the
/// client is given to trust) and its key.
pub fn self_signed() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    Ok((generated.cert.der().clone(), key))
}

/// A server endpoint on `listen` with that certificate.
pub fn endpoint(
    listen: SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, Error> {
    let config = ServerConfig::with_single_cert(vec![cert], key)
        .alpn_protocols(&[ALPN])
        .build()?;
    Ok(Endpoint::server(config, listen)?)
}

/// Accepts connections until the endpoint closes, each on its own task.
pub async fn serve(endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let from = incoming.remote_address();
            match incoming.await {
                Ok(connection) => echo_streams(connection).await,
                Err(e) => eprintln!("{from}: handshake failed: {e}"),
            }
        });
    }
}

/// Echoes every stream of one connection, each on its own task, until the
/// connection closes.
async fn echo_streams(connection: Connection) {
    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
        tokio::spawn(async move {
            // A fixed buffer: memory stays bounded whatever the client sends.
            let mut buf = vec![0u8; 16 * 1024];
            while let Some(n) = recv.read(&mut buf).await? {
                send.write_all(&buf[..n]).await?;
            }
            send.finish()?;
            Ok::<_, Error>(())
        });
    }
}

/// The default place of the certificate the server writes.
pub fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join("quiver-echo-cert.der")
}

#[allow(dead_code)] // The integration test includes this file as a module.
#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:4433").parse()?;
    let cert_path = args.next().map_or_else(default_cert_path, PathBuf::from);
    let (cert, key) = self_signed()?;
    std::fs::write(&cert_path, &cert)?;
    let endpoint = endpoint(listen, cert, key)?;
    println!(
        "echo server on {}, certificate in {}",
        endpoint.local_addr()?,
        cert_path.display()
    );
    serve(endpoint).await;
    Ok(())
}
