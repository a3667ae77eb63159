//! An HTTP/3 client on quiver: `GET`s one URL and prints the status, the
//! headers and the body.
//!
//! ```sh
//! cargo run -p quiver-h3 --example h3_client -- [URL] [CERT]
//! ```
//!
//! Defaults: `https://localhost:4433/` and the certificate `h3_server`
//! wrote (`quiver-h3-cert.der` in the temporary directory). `CERT` is the
//! server's certificate, DER or PEM, so this works against `quiver serve`
//! too (it prints where its PEM is): the client trusts only that
//! certificate, and checks it against the URL's host name.

use std::future::poll_fn;
use std::net::{SocketAddr, ToSocketAddrs as _};

use bytes::{Buf as _, Bytes, BytesMut};
use quiver::rustls::RootCertStore;
use quiver::rustls::pki_types::CertificateDer;
use quiver::rustls::pki_types::pem::PemObject as _;
use quiver::{ClientConfig, Endpoint};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The largest body read.
const MAX_BODY: usize = 16 << 20;

/// A certificate from a file, PEM or DER.
pub fn read_cert(path: &std::path::Path) -> Result<CertificateDer<'static>, Error> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        Ok(CertificateDer::from_pem_slice(&bytes)?)
    } else {
        Ok(CertificateDer::from(bytes))
    }
}

/// A client endpoint on an ephemeral port that trusts only `server_cert`
/// and offers HTTP/3.
pub fn endpoint(server_cert: CertificateDer<'static>) -> Result<Endpoint, Error> {
    let mut roots = RootCertStore::empty();
    roots.add(server_cert)?;
    let mut endpoint = Endpoint::client("0.0.0.0:0".parse()?)?;
    endpoint.set_default_client_config(
        ClientConfig::with_root_certificates(roots)
            .alpn_protocols(&[quiver_h3::ALPN])
            .build()?,
    );
    Ok(endpoint)
}

/// `GET uri` from the server at `addr` on a new connection; returns the
/// response head and its body, and closes the connection (H3_NO_ERROR).
pub async fn get(
    endpoint: &Endpoint,
    addr: SocketAddr,
    uri: &http::Uri,
) -> Result<(http::Response<()>, Bytes), Error> {
    let host = uri.host().ok_or("the URL has no host")?;
    let connection = endpoint.connect(addr, host)?.await?;
    let (mut driver, mut send) = h3::client::new(quiver_h3::Connection::new(connection)).await?;
    // The connection's control streams need driving while we wait.
    let driving = tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
    let request = http::Request::get(uri.clone()).body(())?;
    let mut stream = send.send_request(request).await?;
    match stream.finish().await {
        // RFC 9114 §4.1.2: a server whose response is complete may stop the
        // request stream (H3_NO_ERROR; quinn's server sends 0); the
        // response still counts.
        Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
        other => other?,
    }
    let response = stream.recv_response().await?;
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        if body.len() + chunk.remaining() > MAX_BODY {
            return Err(format!("body over {MAX_BODY} bytes").into());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    // Dropping the last request sender closes the connection with
    // H3_NO_ERROR; the driver then ends.
    drop((stream, send));
    let end = driving.await?;
    if !end.is_h3_no_error() {
        return Err(format!("connection ended with {end}").into());
    }
    endpoint.wait_idle().await;
    Ok((response, body.freeze()))
}

#[allow(dead_code)] // The integration test includes this file as a module.
#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let uri: http::Uri = args
        .next()
        .as_deref()
        .unwrap_or("https://localhost:4433/")
        .parse()?;
    let cert_path = args.next().map_or_else(
        || std::env::temp_dir().join("quiver-h3-cert.der"),
        std::path::PathBuf::from,
    );
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(443);
    // Prefer IPv4: the client endpoint is bound to 0.0.0.0.
    let addr = (host, port)
        .to_socket_addrs()?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{host}: no IPv4 address"))?;
    let endpoint = endpoint(read_cert(&cert_path)?)?;
    let (response, body) = get(&endpoint, addr, &uri).await?;
    println!("{:?} {}", response.version(), response.status());
    for (name, value) in response.headers() {
        println!("{name}: {}", value.to_str().unwrap_or("(not text)"));
    }
    println!();
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
