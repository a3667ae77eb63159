//! The portable path: a plain tokio socket, one datagram per system call,
//! no ECN. Used off Linux, and on Linux when asked for.

use std::io::{self, IoSliceMut};
use std::task::{Context, Poll};

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::{RecvMeta, Transmit, unmap};

pub(crate) fn poll_recv(
    io: &UdpSocket,
    cx: &mut Context<'_>,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
) -> Poll<io::Result<usize>> {
    let n = bufs.len().min(meta.len());
    if n == 0 {
        return Poll::Ready(Ok(0));
    }
    let mut read = ReadBuf::new(&mut bufs[0]);
    let addr = std::task::ready!(io.poll_recv_from(cx, &mut read))?;
    let len = read.filled().len();
    meta[0] = RecvMeta {
        addr: unmap(addr),
        len,
        stride: len,
        ecn: None,
        dst_ip: None,
    };
    // More may be queued: take them without waiting.
    let mut filled = 1;
    while filled < n {
        match io.try_recv_from(&mut bufs[filled]) {
            Ok((len, addr)) => {
                meta[filled] = RecvMeta {
                    addr: unmap(addr),
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                filled += 1;
            }
            Err(_) => break,
        }
    }
    Poll::Ready(Ok(filled))
}

pub(crate) fn poll_send(
    io: &UdpSocket,
    cx: &mut Context<'_>,
    transmits: &[Transmit<'_>],
) -> Poll<io::Result<usize>> {
    for (sent, t) in transmits.iter().enumerate() {
        let stride = t.stride().max(1);
        for segment in t.contents.chunks(stride) {
            match io.poll_send_to(cx, segment, t.destination) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if sent == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if sent == 0 => return Poll::Pending,
                // Report what went out; a partly sent run is sent again
                // whole, and QUIC discards the duplicates.
                Poll::Ready(Err(_)) | Poll::Pending => return Poll::Ready(Ok(sent)),
            }
        }
    }
    Poll::Ready(Ok(transmits.len()))
}
