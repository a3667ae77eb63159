//! `--runtime`'s quinn side: quinn 0.11's server on a current-thread tokio
//! runtime in its own thread, holding `n` idle connections from a quinn
//! client in another, set up as `runtime.rs` sets up quiver's, so that the
//! server thread's CPU per junk datagram compares directly. Both stacks
//! run with their defaults apart from no idle timeout; quinn with ring,
//! its own default provider.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::runtime::{Setup, this_thread_id};

/// Connections opened at once while setting up.
const CONNECT_BATCH: usize = 200;

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
pub(super) fn setup(n: usize) -> anyhow::Result<Setup> {
    let (server_config, client_config) = configs()?;

    let (ready_tx, ready_rx) = mpsc::channel();
    let server_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let loopback = "127.0.0.1:0".parse().expect("address");
            let ep = match quinn::Endpoint::server(server_config, loopback) {
                Ok(ep) => ep,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!(e)));
                    return;
                }
            };
            let _ = ready_tx.send(this_thread_id().map(|tid| (ep.clone(), tid)));
            let mut conns = Vec::new();
            while let Some(incoming) = ep.accept().await {
                if let Ok(c) = incoming.await {
                    conns.push(c);
                }
            }
        });
    });
    let (server, server_tid) = ready_rx.recv()??;
    let addr = server.local_addr()?;

    let (done_tx, done_rx) = mpsc::channel();
    let (client_stop, stop_rx) = mpsc::channel::<()>();
    let client_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conns = rt.block_on(async move {
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
        });
        // The connections stay held (their last handle dropped would close
        // them) until told to stop.
        let ok = conns.is_ok();
        let _ = done_tx.send(conns.as_ref().map(|_| ()).map_err(|e| anyhow!("{e:#}")));
        if ok {
            // Idle (no idle timeout) until told to stop.
            let _ = stop_rx.recv();
        }
        drop(conns);
        drop(rt);
    });
    done_rx.recv()?.context("connecting")?;
    // Let the server finish accepting and go quiet.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Setup {
        addr,
        server_tid,
        open_connections: {
            let counted = server.clone();
            Box::new(move || counted.open_connections())
        },
        close_server: Box::new(move || server.close(0u32.into(), b"")),
        server_thread,
        client_stop,
        client_thread,
    })
}
