//! `--runtime`'s download under a flood (issue 13: "a real client's
//! download started during the flood completes"): junk as fast as one
//! thread can send it, and meanwhile a fresh client of the same stack
//! connects and downloads [`BODY_LEN`] bytes from the server holding the
//! idle connections. Each server answers any bidirectional stream with
//! that many bytes once the request's FIN arrives.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

/// The response to a request.
pub(super) const BODY_LEN: usize = 1 << 20;

/// The request a client sends (any bytes do).
const REQUEST: &[u8] = b"GET /1m";

/// The response, in the binary rather than on a task's stack.
static BODY: [u8; BODY_LEN] = [7; BODY_LEN];

/// Answers every request stream of a quiver connection until it ends.
pub(super) async fn serve_quiver(conn: quiver::Connection) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            if recv.read_to_end(64).await.is_ok() && send.write_all(&BODY).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}

/// Answers every request stream of a quinn connection until it ends.
pub(super) async fn serve_quinn(conn: quinn::Connection) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            if recv.read_to_end(64).await.is_ok() && send.write_all(&BODY).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}

/// A download by a fresh quiver client: connect, request, read it all.
pub(super) async fn download_quiver(
    config: quiver::ClientConfig,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let mut ep = quiver::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(config);
    let conn = ep.connect(addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(REQUEST).await?;
    send.finish()?;
    let body = recv.read_to_end(2 * BODY_LEN).await?;
    anyhow::ensure!(body.len() == BODY_LEN, "{} bytes", body.len());
    conn.close(quiver::VarInt::from_u32(0), b"");
    Ok(())
}

/// A download by a fresh quinn client: connect, request, read it all.
pub(super) async fn download_quinn(
    config: quinn::ClientConfig,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(config);
    let conn = ep.connect(addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(REQUEST).await?;
    send.finish()?;
    let body = recv.read_to_end(2 * BODY_LEN).await?;
    anyhow::ensure!(body.len() == BODY_LEN, "{} bytes", body.len());
    conn.close(0u32.into(), b"");
    ep.wait_idle().await;
    Ok(())
}

/// A download's time under a flood, and the junk sent per second.
pub(super) type Outcome = anyhow::Result<(Duration, f64)>;

/// A stack's download under a flood of the junk given.
pub(super) type Download = Box<dyn Fn(&[Vec<u8>]) -> Outcome + Send>;

/// Runs `download` on a runtime of its own, with a flood of `junk` at
/// `addr` from another thread meanwhile (started 200 ms before it).
/// Returns the download's time and the junk datagrams sent per second.
pub(super) fn under_flood<F, Fut>(addr: SocketAddr, junk: &[Vec<u8>], download: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent, junk) = (stop.clone(), sent.clone(), junk.to_vec());
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let _ = sock.send_to(&junk[i % junk.len()], addr);
                i += 1;
            }
            sent.store(i as u64, Ordering::Relaxed);
        })
    };
    #[allow(clippy::disallowed_methods)] // a benchmark's clock
    let flood_start = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let result = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), download())
            .await
            .map_err(|_| anyhow!("no download within 30 s"))?
    });
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    flood.join().map_err(|_| anyhow!("flood thread panicked"))?;
    let rate = sent.load(Ordering::Relaxed) as f64 / flood_start.elapsed().as_secs_f64();
    result.context("download under the flood")?;
    Ok((took, rate))
}
