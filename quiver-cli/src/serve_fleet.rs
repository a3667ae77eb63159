//! `quiver serve`'s settings for running exposed and in a fleet: admission
//! limits (RFC 9000 §8.1: address validation before state under load) and
//! QUIC-LB connection IDs (draft-ietf-quic-load-balancers-21), so that a
//! load balancer routes every packet of a connection to this server, and a
//! secret the fleet's servers share for their stateless reset and token
//! keys.

use anyhow::{anyhow, bail};
use quiver::proto::quic_lb::{QuicLbCidGenerator, QuicLbConfig};

/// `quiver serve`'s default for
/// [`AdmissionConfig::max_handshakes_per_source`](quiver::AdmissionConfig):
/// a quarter of the default hard limit on handshakes (1024) rather than the
/// library's 16. `quiver serve` is what load generators, benchmarks and
/// test harnesses connect to, and they open their connections in parallel
/// from one address: measured on loopback, an aioquic client opening 300
/// connections 64 at a time had 16 of them refused (CONNECTION_REFUSED)
/// under the library's default, a validated client above the per-source
/// limit being refused by design. Floods are still answered with Retry
/// above the retry threshold (64 in progress, RFC 9000 §8.1.2), whatever
/// their source, and one source still cannot take more than a quarter of
/// the handshake slots. `--max-handshakes-per-source 16` restores the
/// library's default for an exposed server.
const SERVE_MAX_HANDSHAKES_PER_SOURCE: usize = 256;

/// Admission control and load-balancer settings of `quiver serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Connections held at most (default 10000); new clients above it are
    /// refused with CONNECTION_REFUSED.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Handshakes in progress at most (default 1024).
    #[arg(long, value_name = "N")]
    max_handshakes: Option<usize>,
    /// Handshakes in progress from one source address (IPv4 address or
    /// IPv6 /64) at most (default 256 for `quiver serve`; the library's
    /// default is 16).
    #[arg(long, value_name = "N")]
    max_handshakes_per_source: Option<usize>,
    /// Above this many handshakes in progress, new clients get a Retry
    /// first (default 64; 0 retries every client).
    #[arg(long, value_name = "N")]
    retry_threshold: Option<usize>,
    /// Issue QUIC-LB connection IDs (draft-ietf-quic-load-balancers-21
    /// §5): `ROTATION:SERVER_ID:NONCE_LEN[:KEY]`, with the config rotation
    /// bits (0-6), the server ID in hex, the nonce length in octets (4 or
    /// more) and, for the encrypted modes, a 16-octet AES key in hex. For
    /// example `0:0a0b:6` (plaintext) or
    /// `1:0a0b0c:8:000102030405060708090a0b0c0d0e0f`.
    #[arg(long, value_name = "SPEC", value_parser = parse_quic_lb)]
    quic_lb: Option<QuicLb>,
    /// A file holding a secret shared by the servers of a fleet (at least
    /// 32 random bytes): the stateless reset key and the Retry/NEW_TOKEN
    /// token keys derive from it, so every server recognises the others'
    /// resets (RFC 9000 §10.3.2) and accepts their tokens (§8.1.3).
    /// Default: random keys for this run.
    #[arg(long, value_name = "FILE")]
    fleet_key: Option<std::path::PathBuf>,
}

/// A parsed `--quic-lb` specification.
#[derive(Debug, Clone)]
pub struct QuicLb {
    config: QuicLbConfig,
    server_id: Vec<u8>,
}

impl FleetArgs {
    /// The admission limits, defaults overridden by the flags given.
    pub fn admission(&self) -> quiver::AdmissionConfig {
        let mut admission = quiver::AdmissionConfig::default();
        if let Some(n) = self.max_connections {
            admission.max_connections = n;
        }
        if let Some(n) = self.max_handshakes {
            admission.max_handshakes = n;
        }
        admission.max_handshakes_per_source = self
            .max_handshakes_per_source
            .unwrap_or(SERVE_MAX_HANDSHAKES_PER_SOURCE);
        if let Some(n) = self.retry_threshold {
            admission.retry_threshold = n;
        }
        admission
    }

    /// The `--fleet-key` secret, read and checked.
    pub fn fleet_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(path) = &self.fleet_key else {
            return Ok(None);
        };
        read_fleet_key(path).map(Some)
    }

    /// The length of our connection IDs (QUIC-LB fixes it).
    pub fn local_cid_len(&self) -> Option<usize> {
        self.quic_lb.as_ref().map(|lb| lb.config.cid_len())
    }

    /// Installs the QUIC-LB generator on `endpoint`, if one was asked for;
    /// returns a line describing it.
    pub fn apply(&self, endpoint: &quiver::Endpoint) -> anyhow::Result<Option<String>> {
        let Some(lb) = &self.quic_lb else {
            return Ok(None);
        };
        let mut seed = [0u8; 32];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut seed)
            .map_err(|_| anyhow!("no secure random source"))?;
        let generator = QuicLbCidGenerator::new(lb.config.clone(), &lb.server_id, seed)
            .map_err(|e| anyhow!("--quic-lb: {e}"))?;
        endpoint.set_cid_generator(Box::new(generator));
        Ok(Some(format!(
            "QUIC-LB: server ID {}, config rotation {}, {}, {}-octet connection IDs",
            hex(&lb.server_id),
            lb.config.config_rotation(),
            if lb.config.is_encrypted() {
                "encrypted"
            } else {
                "plaintext"
            },
            lb.config.cid_len()
        )))
    }
}

/// At least 32 bytes from `path`.
fn read_fleet_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let secret = std::fs::read(path).map_err(|e| anyhow!("--fleet-key {}: {e}", path.display()))?;
    if secret.len() < 32 {
        bail!(
            "--fleet-key {}: {} bytes; it needs at least 32 random bytes",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        bail!("{what} must be an even number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| anyhow!("{what} is not hex: {s:?}"))
        })
        .collect()
}

/// Parses `ROTATION:SERVER_ID:NONCE_LEN[:KEY]`.
pub fn parse_quic_lb(s: &str) -> Result<QuicLb, String> {
    parse(s).map_err(|e| e.to_string())
}

fn parse(s: &str) -> anyhow::Result<QuicLb> {
    let parts: Vec<&str> = s.split(':').collect();
    let (rotation, server_id, nonce_len, key) = match parts[..] {
        [r, id, n] => (r, id, n, None),
        [r, id, n, k] => (r, id, n, Some(k)),
        _ => bail!("expected ROTATION:SERVER_ID:NONCE_LEN[:KEY]"),
    };
    let rotation: u8 = rotation
        .parse()
        .map_err(|_| anyhow!("config rotation {rotation:?} is not 0-6"))?;
    let server_id = unhex(server_id, "the server ID")?;
    let nonce_len: usize = nonce_len
        .parse()
        .map_err(|_| anyhow!("nonce length {nonce_len:?} is not a number"))?;
    let key = match key {
        Some(k) => {
            let k = unhex(k, "the key")?;
            Some(
                <[u8; 16]>::try_from(k.as_slice())
                    .map_err(|_| anyhow!("the key must be 16 octets (32 hex digits)"))?,
            )
        }
        None => None,
    };
    let config = QuicLbConfig::new(rotation, server_id.len(), nonce_len, key)?;
    Ok(QuicLb { config, server_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_lb_spec() {
        let lb = parse_quic_lb("1:0a0b0c:8:000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(lb.server_id, [0x0a, 0x0b, 0x0c]);
        assert_eq!(lb.config.cid_len(), 12);
        assert!(lb.config.is_encrypted());
        let plain = parse_quic_lb("0:0a0b:6").unwrap();
        assert!(!plain.config.is_encrypted());
        for bad in [
            "",
            "7:0a:6",
            "0:0a:3",
            "0:0g:6",
            "0:0a0:6",
            "0:0a:6:00",
            "0:0a",
        ] {
            assert!(parse_quic_lb(bad).is_err(), "{bad}");
        }
    }

    /// `FleetArgs` parsed from `args`, as `quiver serve` parses them.
    fn fleet_args(args: &[&str]) -> FleetArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            fleet: FleetArgs,
        }
        let argv = std::iter::once("serve").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().fleet
    }

    #[test]
    fn serve_admits_parallel_handshakes_from_one_source_by_default() {
        let library = quiver::AdmissionConfig::default();
        let serve = fleet_args(&[]).admission();
        assert_eq!(
            serve.max_handshakes_per_source,
            SERVE_MAX_HANDSHAKES_PER_SOURCE
        );
        // Only the per-source limit differs from the library's defaults.
        assert_eq!(
            quiver::AdmissionConfig {
                max_handshakes_per_source: library.max_handshakes_per_source,
                ..serve
            },
            library
        );
        let exposed = fleet_args(&[
            "--max-handshakes-per-source",
            "16",
            "--retry-threshold",
            "0",
        ]);
        assert_eq!(exposed.admission().max_handshakes_per_source, 16);
        assert_eq!(exposed.admission().retry_threshold, 0);
    }

    #[test]
    fn fleet_key_file_needs_32_bytes() {
        let dir = std::env::temp_dir().join(format!("quiver-fleet-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, [7u8; 31]).unwrap();
        assert!(read_fleet_key(&short).is_err());
        let good = dir.join("good");
        std::fs::write(&good, [7u8; 48]).unwrap();
        assert_eq!(read_fleet_key(&good).unwrap(), vec![7u8; 48]);
        assert!(read_fleet_key(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
