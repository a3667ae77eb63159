//! `--runtime`'s quinn side: quinn 0.11's server on a current-thread tokio
//! runtime in its own thread, holding `n` idle connections from a quinn
//! client in another, set up as `runtime.rs` sets up quiver's, so that the
//! server thread's CPU per junk datagram compares directly. Both stacks
//! run with their defaults apart from no idle timeout; quinn with ring,
//! its own default provider.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::download;
use super::runtime::{CONNECT_BATCH, Setup, spawn_client, spawn_server};

fn configs() -> anyhow::Result<(quinn::ServerConfig, quinn::ClientConfig)> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(None);
    let transport = Arc::new(transport);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    server_tls.alpn_protocols = vec![b"junk".to_vec()];
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
    server.transport_config(transport.clone());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![b"junk".to_vec()];
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client_tls)?));
    client.transport_config(transport);
    Ok((server, client))
}

/// quinn's server with `n` idle connections from quinn's client.
pub(super) fn setup(n: usize, workers: usize) -> anyhow::Result<Setup> {
    let (server_config, client_config) = configs()?;
    let downloader = client_config.clone();

    let (server, server_thread) = spawn_server(workers, move || async move {
        let ep = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
        let accepting = ep.clone();
        Ok((ep, async move {
            let mut conns = Vec::new();
            while let Some(incoming) = accepting.accept().await {
                if let Ok(c) = incoming.await {
                    tokio::spawn(download::serve_quinn(c.clone()));
                    conns.push(c);
                }
            }
        }))
    })?;
    let addr = server.local_addr()?;

    let (client_stop, client_thread) = spawn_client(move || async move {
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        ep.set_default_client_config(client_config);
        let mut conns = Vec::with_capacity(n);
        while conns.len() < n {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..CONNECT_BATCH.min(n - conns.len()) {
                set.spawn(ep.connect(addr, "localhost")?);
            }
            while let Some(c) = set.join_next().await {
                conns.push(c??);
            }
        }
        anyhow::Ok((ep, conns))
    })?;
    // Let the server finish accepting and go quiet.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Setup {
        addr,
        open_connections: {
            let counted = server.clone();
            Box::new(move || counted.open_connections())
        },
        close_server: Box::new(move || server.close(0u32.into(), b"")),
        download: Box::new(move |junk| {
            let config = downloader.clone();
            download::under_flood(addr, junk, || download::download_quinn(config, addr))
        }),
        server_thread,
        client_stop,
        client_thread,
    })
}
