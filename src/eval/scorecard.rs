//! The eval's scorecard: per category, how many conversations passed every check and the
//! share of checks passed; the committed baseline it is held to.
//!
//! Owns: aggregation, the printed table, the JSON report's shape and the regression rule
//! (a category's check pass rate below its baseline fails the run). Must not: run or judge.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::checks::CheckResult;

/// One turn as run: what the lead sent, what came back, each check's result.
#[derive(Clone, Debug, Serialize)]
pub struct TurnReport {
    pub lead: Vec<String>,
    pub replies: Vec<String>,
    pub checks: Vec<CheckResult>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConversationReport {
    pub category: String,
    pub name: String,
    pub turns: Vec<TurnReport>,
    /// The conversation could not be run (no reply within the wait, a webhook refused):
    /// every check of it counts as failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ConversationReport {
    fn checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.turns.iter().flat_map(|t| t.checks.iter())
    }

    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks().all(|c| c.passed)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    pub conversations: usize,
    pub conversations_passed: usize,
    pub checks: usize,
    pub checks_passed: usize,
}

impl CategoryScore {
    /// Checks passed over checks run (1.0 for a category with none).
    pub fn rate(&self) -> f64 {
        if self.checks == 0 {
            1.0
        } else {
            self.checks_passed as f64 / self.checks as f64
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Scorecard {
    pub brain: String,
    pub categories: BTreeMap<String, CategoryScore>,
    pub total: CategoryScore,
}

/// A conversation that errored scores none of its checks (the runner records the checks
/// it could not run as failed): it must lower the score, not vanish from it.
pub fn score(brain: &str, reports: &[ConversationReport]) -> Scorecard {
    let mut categories: BTreeMap<String, CategoryScore> = BTreeMap::new();
    for r in reports {
        let s = categories.entry(r.category.clone()).or_default();
        s.conversations += 1;
        s.conversations_passed += usize::from(r.passed());
        s.checks += r.checks().count();
        s.checks_passed += if r.error.is_some() {
            0
        } else {
            r.checks().filter(|c| c.passed).count()
        };
    }
    let mut total = CategoryScore::default();
    for s in categories.values() {
        total.conversations += s.conversations;
        total.conversations_passed += s.conversations_passed;
        total.checks += s.checks;
        total.checks_passed += s.checks_passed;
    }
    Scorecard {
        brain: brain.to_string(),
        categories,
        total,
    }
}

impl Scorecard {
    pub fn print(&self) {
        println!(
            "{:<22} {:>13} {:>15} {:>7}",
            "category", "conversations", "checks", "rate"
        );
        let row = |name: &str, s: &CategoryScore| {
            println!(
                "{:<22} {:>13} {:>15} {:>6.1}%",
                name,
                format!("{}/{}", s.conversations_passed, s.conversations),
                format!("{}/{}", s.checks_passed, s.checks),
                s.rate() * 100.0
            );
        };
        for (name, s) in &self.categories {
            row(name, s);
        }
        row("TOTAL", &self.total);
    }
}

/// The committed baseline: per brain, per category, the check pass rate a run must reach.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    pub brains: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Baseline {
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not an eval baseline", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
        }
    }

    /// The categories of `card` below this baseline, each with both rates; a category the
    /// baseline lists that the run did not have is a regression too (the corpus lost it),
    /// unless `subset` (a run of part of the corpus, `--nightly`).
    pub fn regressions(&self, card: &Scorecard, subset: bool) -> Vec<String> {
        let Some(floor) = self.brains.get(&card.brain) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (category, &min) in floor {
            match card.categories.get(category) {
                // Rounded as written, so a baseline written from this very run passes.
                Some(s) if round4(s.rate()) + 1e-9 >= min => {}
                Some(s) => out.push(format!(
                    "{category}: {:.1}% < baseline {:.1}%",
                    s.rate() * 100.0,
                    min * 100.0
                )),
                None if subset => {}
                None => out.push(format!(
                    "{category}: not in this run (baseline {:.1}%)",
                    min * 100.0
                )),
            }
        }
        out
    }

    /// This baseline with `card`'s rates for its brain.
    pub fn with(mut self, card: &Scorecard) -> Self {
        self.brains.insert(
            card.brain.clone(),
            card.categories
                .iter()
                .map(|(k, s)| (k.clone(), round4(s.rate())))
                .collect(),
        );
        self
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(category: &str, passed: &[bool], error: bool) -> ConversationReport {
        ConversationReport {
            category: category.into(),
            name: format!("c{}", passed.len()),
            turns: vec![TurnReport {
                lead: vec!["hi".into()],
                replies: vec![],
                checks: passed
                    .iter()
                    .map(|&p| CheckResult {
                        check: "x".into(),
                        passed: p,
                        detail: String::new(),
                    })
                    .collect(),
            }],
            error: error.then(|| "timed out".into()),
        }
    }

    #[test]
    fn a_category_below_its_baseline_is_a_regression_and_an_error_scores_zero() {
        let good = score("rules", &[report("pets", &[true, true], false)]);
        let baseline = Baseline::default().with(&good);
        assert!(baseline.regressions(&good, false).is_empty());
        let worse = score("rules", &[report("pets", &[true, false], false)]);
        assert_eq!(baseline.regressions(&worse, false).len(), 1);
        let errored = score("rules", &[report("pets", &[true, true], true)]);
        assert_eq!(errored.total.checks_passed, 0);
        assert_eq!(baseline.regressions(&errored, false).len(), 1);
        let other_brain = score("chain", &[report("pets", &[false], false)]);
        assert!(
            baseline.regressions(&other_brain, false).is_empty(),
            "no baseline for chain"
        );
        let missing = score("rules", &[report("tours", &[true], false)]);
        assert!(baseline.regressions(&missing, false)[0].contains("not in this run"));
        assert!(
            baseline.regressions(&missing, true).is_empty(),
            "a subset run"
        );
    }
}
