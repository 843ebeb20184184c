//! The eval corpus: scripted conversations in YAML under `evals/` (one file per category),
//! each turn the lead's text(s) and the checks its reply must pass.
//!
//! Owns: the corpus's schema, reading a directory of it, and refusing a file that names an
//! unknown field or a turn with no check (a turn that checks nothing cannot fail).
//! Must not: run anything or judge a reply (`checks`).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// One file: a category and its conversations.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    pub category: String,
    /// Runs nightly against the live chain too (`SCHEDULE_EVAL`): a small subset.
    #[serde(default)]
    pub nightly: bool,
    pub conversations: Vec<Conversation>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub name: String,
    pub turns: Vec<Turn>,
}

/// One or several texts sent together (a burst).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Burst(Vec<String>),
}

impl Texts {
    pub fn all(&self) -> Vec<&str> {
        match self {
            Texts::One(t) => vec![t.as_str()],
            Texts::Burst(ts) => ts.iter().map(String::as_str).collect(),
        }
    }
}

/// A lead's turn and what the reply to it must do. Each entry of `must_mention` may give
/// alternatives separated by `|` ("Maple Court|maple"): one of them is enough.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    pub lead: Texts,
    #[serde(default)]
    pub must_mention: Vec<String>,
    #[serde(default)]
    pub must_not_mention: Vec<String>,
    /// The question is left for a person: the reply says the team will answer, or the
    /// reply was held for approval.
    #[serde(default)]
    pub must_hold: bool,
    /// Nothing is sent (STOP, an opt-out in words).
    #[serde(default)]
    pub must_not_reply: bool,
    /// After this turn the lead has a tour booked at a building of the catalog, at a time
    /// inside that building's `tour_hours`.
    #[serde(default)]
    pub must_book: bool,
    /// Every dollar amount and bedroom count in the reply is the catalog's or the lead's
    /// own (on by default; a turn may switch it off).
    #[serde(default = "yes")]
    pub catalog_facts_only: bool,
}

fn yes() -> bool {
    true
}

impl Turn {
    fn has_checks(&self) -> bool {
        !self.must_mention.is_empty()
            || !self.must_not_mention.is_empty()
            || self.must_hold
            || self.must_not_reply
            || self.must_book
    }
}

/// Every `*.yaml` file under `dir`, sorted by name, validated.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<CorpusFile>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("Failed to read the eval corpus at {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        let file = parse(&text)
            .with_context(|| format!("{} is not a valid corpus file", path.display()))?;
        files.push(file);
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no *.yaml corpus files in {}",
        dir.display()
    );
    Ok(files)
}

pub fn parse(text: &str) -> anyhow::Result<CorpusFile> {
    let file: CorpusFile = serde_yaml_ng::from_str(text)?;
    anyhow::ensure!(!file.category.trim().is_empty(), "`category` is empty");
    for c in &file.conversations {
        anyhow::ensure!(
            !c.turns.is_empty(),
            "conversation `{}` has no turns",
            c.name
        );
        for (i, t) in c.turns.iter().enumerate() {
            anyhow::ensure!(
                t.lead.all().iter().all(|s| !s.trim().is_empty()),
                "conversation `{}` turn {} has an empty text",
                c.name,
                i + 1
            );
            // The last turn must check something; earlier ones may only set the scene.
            anyhow::ensure!(
                i + 1 < c.turns.len() || t.has_checks(),
                "conversation `{}`: its last turn checks nothing",
                c.name
            );
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_takes_one_text_or_a_burst_and_unknown_fields_are_refused() {
        let f = parse(
            "category: pets\nconversations:\n  - name: a\n    turns:\n      - lead: hi\n      - lead: [one, two]\n        must_hold: true\n",
        )
        .unwrap();
        assert_eq!(f.conversations[0].turns[1].lead.all(), vec!["one", "two"]);
        assert!(f.conversations[0].turns[1].catalog_facts_only);
        let typo = "category: x\nconversations:\n  - name: a\n    turns:\n      - lead: hi\n        must_mentoin: [x]\n";
        assert!(format!("{:#}", parse(typo).unwrap_err()).contains("must_mentoin"));
        let unchecked = "category: x\nconversations:\n  - name: a\n    turns:\n      - lead: hi\n";
        assert!(format!("{:#}", parse(unchecked).unwrap_err()).contains("checks nothing"));
    }

    #[test]
    fn the_committed_corpus_loads_and_holds_at_least_a_hundred_conversations() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals");
        let files = load_dir(&dir).unwrap();
        let n: usize = files.iter().map(|f| f.conversations.len()).sum();
        assert!(n >= 100, "{n} conversations");
        assert!(files.iter().any(|f| f.nightly), "a nightly subset exists");
    }
}
