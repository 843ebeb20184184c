//! `lead-agent eval`: grades a brain against the scripted conversations of `evals/`.
//!
//! Each conversation is played through the real turn path of a whole `serve` built in this
//! process ([`Application::build`] on loopback ports 0, a SQLite file of its own, the
//! in-process queue, the dry-run SMS sender, alerts to the log): every text is posted to
//! `POST /twilio/sms` as Twilio posts it, the lead's actor answers through the pool and
//! the outbox, and the turn is judged from the store once every text is settled (the
//! replies sent, a reply held, the tour on the lead's record). The brain is picked with
//! `--brain`: `rules` (no model: the rules responder alone, what CI grades), `chain` (the
//! configured providers, `USE_AGENT_CORE=false`) or `agent` (the tool-using brain over
//! them); the last two need a provider key in the environment.
//!
//! Owns: building that app, playing the corpus, the scorecard's printing and the baseline
//! comparison (non-zero exit on a regression). Must not: be the service (nothing here runs
//! in `serve`), or touch a database or queue but its own throwaway ones.
//!
//! Layout: `corpus` (the YAML schema), `checks` (judging a turn), `scorecard` (the
//! aggregation and the baseline).

pub mod checks;
pub mod corpus;
pub mod scorecard;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actors::brain::catalog::Catalog;
use actors::brain::context::LeadContextStore;
use actors::ports::{ChatModel, LeadId};
use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::config::Settings;
use crate::startup::{Application, Overrides};
use crate::store::SqlStore;
use checks::{TurnOutcome, check_turn, not_run};
use corpus::{Conversation, CorpusFile};
use scorecard::{Baseline, ConversationReport, Scorecard, TurnReport, score};

/// Which brain answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalBrain {
    /// The rules responder alone (no model keys needed).
    Rules,
    /// The configured model chain, plain (`USE_AGENT_CORE=false`).
    Chain,
    /// The tool-using brain over the configured chain (`USE_AGENT_CORE=true`).
    Agent,
}

impl EvalBrain {
    pub fn name(self) -> &'static str {
        match self {
            EvalBrain::Rules => "rules",
            EvalBrain::Chain => "chain",
            EvalBrain::Agent => "agent",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    #[arg(long, value_enum, default_value = "rules")]
    pub brain: EvalBrain,
    /// The full report (every turn, reply and check) as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The corpus directory.
    #[arg(long, default_value = "evals")]
    pub corpus: PathBuf,
    /// The baseline a run is held to (per brain, per category).
    #[arg(long, default_value = "evals/baseline.json")]
    pub baseline: PathBuf,
    /// Write this run's rates into the baseline file instead of comparing.
    #[arg(long)]
    pub write_baseline: bool,
    /// Only the corpus files marked `nightly: true`.
    #[arg(long)]
    pub nightly: bool,
    /// Conversations played at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How long one turn may take to settle.
    #[arg(long, default_value_t = 60)]
    pub turn_wait_secs: u64,
}

/// Provider settings copied from the environment for `chain` and `agent`: keys, models,
/// order, base URLs, budgets. Nothing else of the environment reaches the eval's app.
const PROVIDER_PREFIXES: &[&str] = &["ANTHROPIC_", "GOOGLE_", "GEMINI_", "OPENAI_", "LLM_"];

pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let mut files = corpus::load_dir(&args.corpus)?;
    if args.nightly {
        files.retain(|f| f.nightly);
    }
    let dir = scratch_dir()?;
    let result = run_in(&args, &files, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (card, reports) = result?;
    if let Some(path) = &args.json {
        let report = serde_json::json!({"scorecard": card, "conversations": reports});
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    for r in reports.iter().filter(|r| !r.passed()) {
        let failed: Vec<String> = r
            .turns
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(move |c| format!("turn {}: {} ({})", i + 1, c.check, c.detail))
            })
            .collect();
        // The replies quoted in a detail are a model's text: escaped for the terminal.
        println!(
            "FAIL {}/{}: {}",
            r.category,
            r.name,
            crate::telemetry::escape(&failed.join("; "))
        );
    }
    card.print();
    let baseline = Baseline::read(&args.baseline)?;
    if args.write_baseline {
        let updated = baseline.unwrap_or_default().with(&card);
        std::fs::write(
            &args.baseline,
            serde_json::to_string_pretty(&updated)? + "\n",
        )
        .with_context(|| format!("Failed to write {}", args.baseline.display()))?;
        println!(
            "baseline for `{}` written to {}",
            card.brain,
            args.baseline.display()
        );
        return Ok(());
    }
    match baseline {
        Some(b) => {
            let regressions = b.regressions(&card, args.nightly);
            if !regressions.is_empty() {
                bail!(
                    "the `{}` brain regressed below {}:\n  {}",
                    card.brain,
                    args.baseline.display(),
                    regressions.join("\n  ")
                );
            }
            println!("no category below {}", args.baseline.display());
        }
        None => println!("no baseline at {}", args.baseline.display()),
    }
    Ok(())
}

fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "lead-agent-eval-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    Ok(dir)
}

/// The settings of the eval's own `serve`: loopback, port 0, its own SQLite file and
/// journal, the bundled sample catalog (the corpus's expectations are its facts).
fn eval_settings(brain: EvalBrain, dir: &Path) -> anyhow::Result<Settings> {
    let mut env: HashMap<String, String> = HashMap::from([
        ("PORT".into(), "0".into()),
        ("OPS_PORT".into(), "0".into()),
        ("BIND_ADDRESS".into(), "127.0.0.1".into()),
        ("OPS_BIND_ADDRESS".into(), "127.0.0.1".into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}", dir.join("eval.db").display()),
        ),
        (
            "INBOUND_JOURNAL_PATH".into(),
            dir.join("inbound.jsonl").display().to_string(),
        ),
    ]);
    if brain != EvalBrain::Rules {
        for (k, v) in std::env::vars() {
            if PROVIDER_PREFIXES.iter().any(|p| k.starts_with(p)) {
                env.insert(k, v);
            }
        }
        let keyed = ["ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"]
            .iter()
            .any(|k| env.contains_key(*k));
        if !keyed {
            bail!(
                "--brain {} grades the model chain: set ANTHROPIC_API_KEY, GOOGLE_API_KEY or OPENAI_API_KEY",
                brain.name()
            );
        }
        let agent = if brain == EvalBrain::Agent {
            "true"
        } else {
            "false"
        };
        env.insert("USE_AGENT_CORE".into(), agent.into());
    }
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Settings::from_map(&map).map_err(|e| anyhow::anyhow!("the eval's settings: {e}"))
}

async fn run_in(
    args: &EvalArgs,
    files: &[CorpusFile],
    dir: &Path,
) -> anyhow::Result<(Scorecard, Vec<ConversationReport>)> {
    let settings = eval_settings(args.brain, dir)?;
    // `rules`: no provider in front of the rules responder, whatever the environment holds.
    let chat_models: Option<Vec<Arc<dyn ChatModel>>> =
        (args.brain == EvalBrain::Rules).then(Vec::new);
    let app = Application::build(settings, Overrides { chat_models })
        .await
        .context("Failed to build the eval's app")?;
    let player = Player {
        base: format!("http://{}", app.local_addr()),
        store: app.state().store.clone(),
        http: reqwest::Client::new(),
        catalog: crate::catalog::load(None)?,
        wait: Duration::from_secs(args.turn_wait_secs),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let jobs: Vec<(usize, &CorpusFile, &Conversation)> = files
        .iter()
        .flat_map(|f| f.conversations.iter().map(move |c| (f, c)))
        .enumerate()
        .map(|(i, (f, c))| (i, f, c))
        .collect();
    let player = &player;
    let mut reports: Vec<(usize, ConversationReport)> = futures_util::stream::iter(jobs)
        .map(|(i, f, c)| async move { (i, player.play(i, &f.category, c).await) })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<ConversationReport> = reports.into_iter().map(|(_, r)| r).collect();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    Ok((score(args.brain.name(), &reports), reports))
}

struct Player {
    base: String,
    store: SqlStore,
    http: reqwest::Client,
    catalog: Catalog,
    wait: Duration,
}

impl Player {
    /// Each conversation its own lead: a Chicago number from its index.
    async fn play(&self, index: usize, category: &str, convo: &Conversation) -> ConversationReport {
        let lead = LeadId::new(format!("+1312555{:04}", index % 10_000));
        let mut report = ConversationReport {
            category: category.to_string(),
            name: convo.name.clone(),
            turns: Vec::new(),
            error: None,
        };
        let mut said: Vec<String> = Vec::new();
        for turn in &convo.turns {
            let texts: Vec<String> = turn.lead.all().into_iter().map(String::from).collect();
            said.extend(texts.iter().cloned());
            match self.play_turn(&lead, &texts).await {
                Ok(outcome) => report.turns.push(TurnReport {
                    lead: texts,
                    checks: check_turn(turn, &outcome, &self.catalog, &said),
                    replies: outcome.replies,
                }),
                Err(e) => {
                    let why = format!("{e:#}");
                    report.turns.push(TurnReport {
                        lead: texts,
                        replies: Vec::new(),
                        checks: not_run(turn, &why),
                    });
                    report.error = Some(why);
                    break;
                }
            }
        }
        report
    }

    async fn play_turn(&self, lead: &LeadId, texts: &[String]) -> anyhow::Result<TurnOutcome> {
        let before = self.store.conversation(lead, 1_000).await?;
        let last_id = before.iter().map(|m| m.id).max().unwrap_or(0);
        let tour_before = self.store.load_context(lead).await?.tour;
        for text in texts {
            self.post(lead, text).await?;
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        let settled = loop {
            let now = self.store.conversation(lead, 1_000).await?;
            let new: Vec<_> = now.into_iter().filter(|m| m.id > last_id).collect();
            let inbound = new.iter().filter(|m| m.direction == "inbound").count();
            let done = inbound >= texts.len()
                && new.iter().all(|m| match m.direction.as_str() {
                    "inbound" => m.state != "pending",
                    _ => !matches!(m.state.as_str(), "queued" | "sending"),
                });
            if done {
                break new;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("not settled within {:?}", self.wait);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let tour_after = self.store.load_context(lead).await?.tour;
        let new_tour = match (&tour_before, &tour_after) {
            (_, None) => None,
            (Some(b), Some(a)) if b.building == a.building && b.when == a.when => None,
            (_, Some(a)) => Some((a.building.clone(), a.when.clone())),
        };
        Ok(TurnOutcome {
            replies: settled
                .iter()
                .filter(|m| m.direction == "outbound")
                .map(|m| m.body.clone())
                .collect(),
            held: settled
                .iter()
                .any(|m| m.direction == "inbound" && m.state == "answered" && m.reply_id.is_none()),
            new_tour,
        })
    }

    /// One inbound SMS as Twilio posts it. The eval's app has no `TWILIO_AUTH_TOKEN`, so
    /// it takes unsigned webhooks from loopback, as `serve` does.
    async fn post(&self, lead: &LeadId, text: &str) -> anyhow::Result<()> {
        let sid = crate::channels::twilio::new_message_sid();
        let form = [
            ("MessageSid", sid.as_str()),
            ("AccountSid", "ACeval00000000000000000000000000000"),
            ("From", lead.as_str()),
            ("To", "+13125550000"),
            ("Body", text),
            ("NumMedia", "0"),
        ];
        let response = self
            .http
            .post(format!("{}/twilio/sms", self.base))
            .form(&form)
            .send()
            .await
            .context("Failed to post the webhook")?;
        if !response.status().is_success() {
            bail!("the webhook answered {}", response.status());
        }
        Ok(())
    }
}
