//! The impaired benchmark (`--impair SPEC`): quiver, with each congestion
//! controller asked for, and quinn download the same size through the same
//! kind of impaired path ([`crate::relay`]), run after run. Run `i` of every
//! stack uses relay seed `seed + i`, and the stacks take turns within a
//! run, so a change in the machine's load falls on all of them alike.
//!
//! The seed fixes the relay's random stream, not which datagrams it hits:
//! the stacks send different datagrams, so the same seed gives them the
//! same loss *process*, not the same losses.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use quiver::proto::congestion::{BbrConfig, ControllerFactory, CubicConfig, NewRenoConfig};

use crate::relay::Impairment;
use crate::{Identity, quinn_side, quiver_side, size_name};

/// A congestion controller of quiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// NewReno (RFC 9002 §7.3).
    NewReno,
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406).
    Cubic,
    /// BBRv3 (draft-ietf-ccwg-bbr).
    Bbr,
}

impl Controller {
    /// `newreno`, `cubic` or `bbr`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "newreno" => Ok(Self::NewReno),
            "cubic" => Ok(Self::Cubic),
            "bbr" => Ok(Self::Bbr),
            _ => bail!("unknown congestion controller {s:?} (newreno, cubic, bbr)"),
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::NewReno => "newreno",
            Self::Cubic => "cubic",
            Self::Bbr => "bbr",
        }
    }

    /// Its factory, for `TransportConfig::congestion`.
    pub fn factory(self) -> Arc<dyn ControllerFactory> {
        match self {
            Self::NewReno => Arc::new(NewRenoConfig::default()),
            Self::Cubic => Arc::new(CubicConfig::default()),
            Self::Bbr => Arc::new(BbrConfig::default()),
        }
    }
}

/// One stack under test.
#[derive(Debug, Clone, Copy)]
enum Stack {
    /// quiver, with this controller (`None`: its default).
    Quiver(Option<Controller>),
    Quinn,
}

impl Stack {
    fn name(self) -> String {
        match self {
            Self::Quiver(None) => "quiver".to_owned(),
            Self::Quiver(Some(cc)) => format!("quiver ({})", cc.name()),
            Self::Quinn => "quinn".to_owned(),
        }
    }
}

/// What to run.
pub struct Plan<'a> {
    /// The path's impairments.
    pub impairment: &'a Impairment,
    /// Bytes downloaded per run, on one stream.
    pub size: u64,
    /// Runs per stack.
    pub runs: u32,
    /// Seed of the first run.
    pub seed: u64,
    /// quiver's controllers; empty: quiver's default only.
    pub controllers: &'a [Controller],
    /// Run quiver.
    pub quiver: bool,
    /// Run quinn.
    pub quinn: bool,
}

/// Runs the plan and prints a Markdown table of every run, the medians,
/// and quinn's median time over each quiver's (above 1: quiver is faster).
pub async fn run(id: &Identity, plan: &Plan<'_>) -> anyhow::Result<()> {
    let mut stacks = Vec::new();
    if plan.quiver {
        if plan.controllers.is_empty() {
            stacks.push(Stack::Quiver(None));
        }
        stacks.extend(plan.controllers.iter().map(|&cc| Stack::Quiver(Some(cc))));
    }
    if plan.quinn {
        stacks.push(Stack::Quinn);
    }
    if stacks.is_empty() {
        bail!("nothing to run");
    }
    let runs = plan.runs.max(1);
    println!(
        "impaired path ({}), {} download on one stream, {runs} run(s), relay seeds {}..={}; \
         quinn 0.11.12 with its defaults (CUBIC)",
        plan.impairment,
        size_name(plan.size),
        plan.seed,
        plan.seed + u64::from(runs) - 1,
    );
    println!();
    let names: Vec<String> = stacks.iter().map(|s| s.name()).collect();
    println!("| run | seed | {} |", names.join(" | "));
    println!("|{}", " --- |".repeat(stacks.len() + 2));
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); stacks.len()];
    for i in 0..runs {
        let seed = plan.seed + u64::from(i);
        let mut row = Vec::new();
        for (stack, times) in stacks.iter().zip(&mut times) {
            let path = Some((plan.impairment, seed));
            let run = async {
                match *stack {
                    Stack::Quiver(cc) => {
                        quiver_side::bulk(id, plan.size, 1, cc.as_ref(), path).await
                    }
                    Stack::Quinn => quinn_side::bulk(id, plan.size, 1, false, path).await,
                }
            };
            let t = tokio::time::timeout(Duration::from_secs(600), run)
                .await
                .map_err(|_| anyhow!("a run took over 10 minutes"))?
                .with_context(|| format!("{}, seed {seed}", stack.name()))?;
            times.push(t);
            row.push(format!("{t:.3} s"));
            // Let the closes drain before the next run.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("| {} | {seed} | {} |", i + 1, row.join(" | "));
    }
    let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let cells: Vec<String> = medians
        .iter()
        .map(|&m| format!("{m:.3} s ({:.1} Mbit/s)", plan.size as f64 * 8.0 / m / 1e6))
        .collect();
    println!("| median | | {} |", cells.join(" | "));
    if let Some(q) = stacks.iter().position(|s| matches!(s, Stack::Quinn)) {
        let ratios: Vec<String> = stacks
            .iter()
            .zip(&medians)
            .map(|(s, m)| match s {
                Stack::Quinn => String::new(),
                _ => format!("{:.2}", medians[q] / m),
            })
            .collect();
        println!("| quinn/quiver | | {} |", ratios.join(" | "));
    }
    Ok(())
}

/// The median (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn controllers_parse() {
        assert_eq!(Controller::parse("cubic").unwrap(), Controller::Cubic);
        assert_eq!(Controller::parse("bbr").unwrap(), Controller::Bbr);
        assert_eq!(Controller::parse("newreno").unwrap(), Controller::NewReno);
        assert!(Controller::parse("vegas").is_err());
    }
}
