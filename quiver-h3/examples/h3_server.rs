//! An HTTP/3 server on quiver: answers every request with a short text
//! naming the method and path (`GET /hello` → "hello from HTTP/3 over
//! quiver: GET /hello").
//!
//! ```sh
//! cargo run -p quiver-h3 --example h3_server -- [LISTEN_ADDR] [CERT_DER_OUT]
//! ```
//!
//! Defaults: `127.0.0.1:4433`, and the self-signed certificate it makes for
//! "localhost" is written to `quiver-h3-cert.der` in the temporary
//! directory, where `h3_client` looks for it. Try it with
//! `cargo run -p quiver-h3 --example h3_client -- https://localhost:4433/hello`.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use quiver::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use quiver::{Endpoint, ServerConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A self-signed certificate for "localhost" and 127.0.0.1, and its key.
pub fn self_signed() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    Ok((generated.cert.der().clone(), key))
}

/// A QUIC server endpoint on `listen` offering HTTP/3 (ALPN `h3`).
pub fn endpoint(
    listen: SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, Error> {
    let config = ServerConfig::with_single_cert(vec![cert], key)
        .alpn_protocols(&[quiver_h3::ALPN])
        .build()?;
    Ok(Endpoint::server(config, listen)?)
}

/// Accepts connections until the endpoint closes; each connection, and
/// each request, on its own task.
pub async fn serve(endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            if let Err(e) = serve_connection(incoming).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn serve_connection(incoming: quiver::Incoming) -> Result<(), Error> {
    let connection = incoming.await?;
    // h3 drives HTTP/3 over quiver's streams through quiver-h3.
    let mut h3 =
        h3::server::Connection::<_, Bytes>::new(quiver_h3::Connection::new(connection)).await?;
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                tokio::spawn(async move {
                    let (request, mut stream) = resolver.resolve_request().await?;
                    let body = format!(
                        "hello from HTTP/3 over quiver: {} {}\n",
                        request.method(),
                        request.uri().path()
                    );
                    let response = http::Response::builder()
                        .status(200)
                        .header("content-type", "text/plain")
                        .header("content-length", body.len())
                        .body(())?;
                    stream.send_response(response).await?;
                    stream.send_data(Bytes::from(body)).await?;
                    stream.finish().await?;
                    Ok::<_, Error>(())
                });
            }
            // The client sent GOAWAY and every request is answered.
            Ok(None) => return Ok(()),
            // The client closed the connection: the normal end.
            Err(e) if e.is_h3_no_error() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The default place of the certificate the server writes.
pub fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join("quiver-h3-cert.der")
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
        "HTTP/3 server on {}, certificate in {}",
        endpoint.local_addr()?,
        cert_path.display()
    );
    serve(endpoint).await;
    Ok(())
}
