//! Where the benchmark's sockets bind: `127.0.0.1:0` (a port the kernel
//! picks), or with `QUIVER_BENCH_PORTS=LOW-HIGH` the ports of that range in
//! turn, for machines where several jobs share the port space and each
//! keeps to its own range.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many addresses were handed out.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The next loopback address to bind.
pub fn loopback() -> SocketAddr {
    let port = std::env::var("QUIVER_BENCH_PORTS")
        .ok()
        .and_then(|r| parse_range(&r))
        .map_or(0, |(low, high)| {
            let span = u32::from(high - low) + 1;
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % span;
            low + u16::try_from(i).unwrap_or(0)
        });
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `LOW-HIGH`, both inclusive, `LOW <= HIGH`, `LOW > 0`.
fn parse_range(r: &str) -> Option<(u16, u16)> {
    let (low, high) = r.split_once('-')?;
    let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
    (low > 0 && low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges() {
        assert_eq!(super::parse_range("35000-35999"), Some((35000, 35999)));
        assert_eq!(super::parse_range("35999-35000"), None);
        assert_eq!(super::parse_range("0-10"), None);
        assert_eq!(super::parse_range("x"), None);
    }
}
