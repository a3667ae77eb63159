//! ICMP errors for the endpoint's socket: the driver waits for them
//! beside its datagrams and hands each "destination unreachable" to the
//! core ([`quiver_proto::Endpoint::handle_unreachable`]), so a client whose
//! server is not there fails at once rather than at its handshake timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quiver_proto::Unreachable;
use quiver_udp::{IcmpError, IcmpKind, UdpSocket};

/// Reports taken from the kernel per wake-up at most.
const BATCH: usize = 8;

type Wait = Pin<Box<dyn Future<Output = (io::Result<usize>, [IcmpError; BATCH])> + Send>>;

/// The wait for one socket's ICMP reports. It allocates only when a report
/// arrives (a new wait), never per datagram.
pub(crate) struct IcmpWatch {
    socket: Arc<UdpSocket>,
    wait: Option<Wait>,
    /// The wait failed (the reactor is going away): no new one.
    off: bool,
}

impl IcmpWatch {
    /// Watches `socket`, if it reports ICMP errors
    /// ([`UdpSocket::icmp_errors`]).
    pub(crate) fn new(socket: Arc<UdpSocket>) -> Self {
        let off = !socket.icmp_errors();
        Self {
            socket,
            wait: None,
            off,
        }
    }

    /// Passes each report that arrived to `f`, and registers `cx` for the
    /// next ones.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, mut f: impl FnMut(&IcmpError)) {
        // Bounded: an ICMP flood must not hold the driver.
        for _ in 0..4 {
            if self.off {
                return;
            }
            let wait = self.wait.get_or_insert_with(|| {
                let socket = self.socket.clone();
                Box::pin(async move {
                    let mut out = [IcmpError::default(); BATCH];
                    let result = socket.recv_icmp_errors(&mut out).await;
                    (result, out)
                })
            });
            let Poll::Ready((result, out)) = wait.as_mut().poll(cx) else {
                return;
            };
            self.wait = None;
            match result {
                Ok(n) => out[..n].iter().for_each(&mut f),
                Err(e) => {
                    tracing::debug!(error = %e, "ICMP errors no longer read");
                    self.off = true;
                }
            }
        }
        // More may be queued: come back soon.
        cx.waker().wake_by_ref();
    }
}

impl std::fmt::Debug for IcmpWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpWatch").field("off", &self.off).finish()
    }
}

/// The core's name for what the ICMP message said.
pub(crate) fn unreachable(kind: IcmpKind) -> Unreachable {
    match kind {
        IcmpKind::PortUnreachable => Unreachable::Port,
        IcmpKind::HostUnreachable => Unreachable::Host,
        IcmpKind::Prohibited => Unreachable::Prohibited,
    }
}
