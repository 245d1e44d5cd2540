//! The simulator (`swh-scheduler simulator`): compares scheduling policies on a simulated
//! forge, driving the real scheduler (store, scripts, visit runner, end-of-run rules) with a
//! simulated clock. Only time, the forge, the lister, the queue and the workers are simulated.
//!
//! - [`forge`]: the original's origin model (commit rates, visit lengths, snapshots);
//! - [`agenda`]: the discrete-event core;
//! - [`engine`]: one simulation, in either mode;
//! - [`report`]: what it saw, the original's report lines and CSV, the comparison table;
//! - [`plots`]: the PNG charts.

pub mod agenda;
pub mod engine;
pub mod forge;
pub mod plots;
pub mod report;

pub use engine::{Mode, SimConfig, Target, fill_test_data, load_git_task_type};
pub use report::Report;

use crate::error::{Error, Result};
use crate::model::VisitPolicy;

/// Parses a `--policy` value: a policy name, or a weighted mix `name=weight,name=weight`
/// (the visit runner's mixes).
pub fn parse_policy_mix(text: &str) -> Result<Vec<(VisitPolicy, u32)>> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (name, weight) = match part.split_once('=') {
            Some((n, w)) => {
                let w: u32 = w.trim().parse().map_err(|_| {
                    Error::invalid("policy", text, format!("weight {w:?} is not an integer"))
                })?;
                (n.trim(), w)
            }
            None => (part, 1),
        };
        let policy: VisitPolicy = name.parse().map_err(|_| {
            Error::invalid(
                "policy",
                text,
                format!(
                    "unknown policy {name:?} (known: oldest_scheduled_first, \
                     never_visited_oldest_update_first, already_visited_order_by_lag)"
                ),
            )
        })?;
        mix.push((policy, weight));
    }
    if mix.iter().all(|(_, w)| *w == 0) {
        return Err(Error::invalid(
            "policy",
            text,
            "no policy has a weight above 0",
        ));
    }
    Ok(mix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_mixes() {
        assert_eq!(
            parse_policy_mix("oldest_scheduled_first").unwrap(),
            [(VisitPolicy::OldestScheduledFirst, 1)]
        );
        assert_eq!(
            parse_policy_mix(
                "already_visited_order_by_lag=40, never_visited_oldest_update_first=60"
            )
            .unwrap(),
            [
                (VisitPolicy::AlreadyVisitedOrderByLag, 40),
                (VisitPolicy::NeverVisitedOldestUpdateFirst, 60)
            ]
        );
        let e = parse_policy_mix("fastest_first").unwrap_err().to_string();
        assert!(e.contains("policy") && e.contains("fastest_first"), "{e}");
        let e = parse_policy_mix("oldest_scheduled_first=x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight"), "{e}");
        assert!(parse_policy_mix("oldest_scheduled_first=0").is_err());
    }
}
