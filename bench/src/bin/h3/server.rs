//! The benchmark's HTTP/3 server, generic over the QUIC transport: `GET
//! /size/N` answers 200 with N zero bytes (sent from one static buffer,
//! no allocation per request body), anything else 404.

use bytes::Bytes;
use h3::quic;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Serves one connection until the client closes it (H3_NO_ERROR is a
/// clean end; any other error is returned).
pub async fn serve<C>(conn: C) -> anyhow::Result<()>
where
    C: quic::Connection<Bytes> + Send + 'static,
    C::BidiStream: quic::BidiStream<Bytes> + Send + 'static,
    <C::BidiStream as quic::BidiStream<Bytes>>::SendStream: Send,
    <C::BidiStream as quic::BidiStream<Bytes>>::RecvStream: Send,
    C::OpenStreams: Send,
    C::SendStream: Send,
    C::RecvStream: Send,
{
    let mut h3 = h3::server::Connection::<C, Bytes>::new(conn).await?;
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                tokio::spawn(async move {
                    let (request, stream) = resolver.resolve_request().await?;
                    respond(request, stream).await
                });
            }
            Ok(None) => return Ok(()),
            Err(e) if e.is_h3_no_error() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn respond<S>(
    request: http::Request<()>,
    mut stream: h3::server::RequestStream<S, Bytes>,
) -> anyhow::Result<()>
where
    S: quic::BidiStream<Bytes>,
{
    let size = request
        .uri()
        .path()
        .strip_prefix("/size/")
        .and_then(|n| n.parse::<u64>().ok());
    let Some(mut left) = size else {
        let response = http::Response::builder().status(404).body(())?;
        stream.send_response(response).await?;
        return Ok(stream.finish().await?);
    };
    let response = http::Response::builder()
        .status(200)
        .header("content-length", left)
        .body(())?;
    stream.send_response(response).await?;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        stream.send_data(Bytes::from_static(&ZEROS[..n])).await?;
        left -= n as u64;
    }
    Ok(stream.finish().await?)
}
