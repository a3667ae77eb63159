//! Seeds: where every random decision of a run comes from, and how to replay one.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;

use crate::rng::mix;

/// The seed of a simulation run. All randomness of a [`Network`](crate::Network)
/// derives from it, so the same seed replays the same run.
///
/// Displayed as `0x` and 16 hex digits, which [`Seed::parse`] reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// Environment variable naming the seed to use (decimal or `0x` hex).
    pub const ENV: &'static str = "QUIVER_SIM_SEED";
    /// Environment variable overriding how many seeds [`for_each_seed`] runs.
    pub const COUNT_ENV: &'static str = "QUIVER_SIM_SEEDS";

    /// The seed in `QUIVER_SIM_SEED` if set, otherwise `default`.
    ///
    /// # Panics
    /// If the variable is set but is not a decimal or `0x`-hex `u64`.
    pub fn from_env_or(default: u64) -> Seed {
        match std::env::var(Self::ENV) {
            Ok(s) => Seed::parse(&s)
                .unwrap_or_else(|e| panic!("{}={s:?} is not a valid seed: {e}", Self::ENV)),
            Err(_) => Seed(default),
        }
    }

    /// Reads a seed written in decimal (`42`) or hex (`0x2a`, `0X2A`);
    /// surrounding whitespace and `_` separators are ignored.
    pub fn parse(s: &str) -> Result<Seed, ParseSeedError> {
        let s = s.trim().replace('_', "");
        let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse::<u64>(),
        };
        parsed.map(Seed).map_err(|_| ParseSeedError { input: s })
    }

    /// The `n` seeds a sweep runs: `0, 1, …, n-1` (each is mixed before use,
    /// so neighbouring seeds give unrelated runs).
    pub fn sweep(n: usize) -> impl Iterator<Item = Seed> {
        (0..n as u64).map(Seed)
    }

    /// A 64-bit value derived from this seed and `label`, independent for
    /// distinct labels; use it to seed a node's own [`Rng`](crate::Rng).
    pub fn derive(self, label: &str) -> u64 {
        // FNV-1a over the label, then mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        mix(self.0, [0x006c_6162_656c, h, label.len() as u64])
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl FromStr for Seed {
    type Err = ParseSeedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Seed::parse(s)
    }
}

/// A seed string that is neither a decimal nor a `0x`-hex `u64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSeedError {
    input: String,
}

impl fmt::Display for ParseSeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected a decimal or 0x-hex u64, got {:?}", self.input)
    }
}

impl std::error::Error for ParseSeedError {}

/// Runs `f` once per seed of a sweep, reporting the seed that fails.
///
/// Runs [`Seed::sweep`]`(n)`, or `QUIVER_SIM_SEEDS` seeds when that variable
/// is set; when `QUIVER_SIM_SEED` is set, runs only that seed, which is how a
/// reported failure is replayed. If `f` panics, prints
/// `failing seed: 0x… (rerun with QUIVER_SIM_SEED=0x…)` and resumes the panic.
///
/// # Panics
/// Whenever `f` panics, or if either variable is malformed.
pub fn for_each_seed(n: usize, mut f: impl FnMut(Seed)) {
    let seeds: Vec<Seed> = if std::env::var_os(Seed::ENV).is_some() {
        vec![Seed::from_env_or(0)]
    } else {
        let count = match std::env::var(Seed::COUNT_ENV) {
            Ok(s) => s
                .trim()
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{}={s:?} is not a seed count", Seed::COUNT_ENV)),
            Err(_) => n,
        };
        Seed::sweep(count).collect()
    };
    for seed in seeds {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(seed))) {
            eprintln!("failing seed: {seed} (rerun with {}={seed})", Seed::ENV);
            panic::resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_hex() {
        assert_eq!(Seed::parse("42"), Ok(Seed(42)));
        assert_eq!(Seed::parse("0x2a"), Ok(Seed(42)));
        assert_eq!(Seed::parse(" 0X2A\n"), Ok(Seed(42)));
        assert_eq!(Seed::parse("0xdead_beef"), Ok(Seed(0xdead_beef)));
        assert_eq!(Seed::parse("18446744073709551615"), Ok(Seed(u64::MAX)));
    }

    #[test]
    fn rejects_malformed_seeds() {
        for bad in ["", "0x", "zz", "-1", "0x1g", "18446744073709551616"] {
            assert!(Seed::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        for s in [0, 1, 0x2a, u64::MAX] {
            let shown = Seed(s).to_string();
            assert!(shown.starts_with("0x") && shown.len() == 18, "{shown}");
            assert_eq!(Seed::parse(&shown), Ok(Seed(s)));
        }
    }

    #[test]
    fn derived_values_depend_on_seed_and_label() {
        assert_eq!(Seed(1).derive("client"), Seed(1).derive("client"));
        assert_ne!(Seed(1).derive("client"), Seed(1).derive("server"));
        assert_ne!(Seed(1).derive("client"), Seed(2).derive("client"));
    }
}
