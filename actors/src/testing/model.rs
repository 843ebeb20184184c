//! A scriptable chat model ([`FakeModel`]): answers, hangs, fails, panics or plays a
//! script, and records every prompt and how many calls ran at once, overall and per lead.
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::*;

enum Behaviour {
    Answer(String),
    Hang,
    Fail(ModelError),
    /// Panics when a new message contains the text; answers otherwise.
    PanicOn(String, String),
    /// Like `PanicOn`, but only the first time.
    PanicOnce(String, String, AtomicBool),
    /// Plays the scripted outcomes in order, then answers the text.
    Script(
        Mutex<std::collections::VecDeque<Result<String, ModelError>>>,
        String,
    ),
}

/// A scriptable model that records every prompt and how many calls ran at once, overall
/// and per lead.
pub struct FakeModel {
    behaviour: Behaviour,
    latency: Duration,
    in_flight: AtomicUsize,
    max_concurrent: AtomicUsize,
    calls: AtomicUsize,
    prompts: Mutex<Vec<Prompt>>,
    per_lead: Mutex<HashMap<LeadId, usize>>,
    overlap_seen: AtomicBool,
}

impl FakeModel {
    fn with(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            latency: Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            prompts: Mutex::new(Vec::new()),
            per_lead: Mutex::new(HashMap::new()),
            overlap_seen: AtomicBool::new(false),
        }
    }
    pub fn answering(text: &str) -> Self {
        Self::with(Behaviour::Answer(text.to_string()))
    }
    pub fn hanging() -> Self {
        Self::with(Behaviour::Hang)
    }
    pub fn failing(e: ModelError) -> Self {
        Self::with(Behaviour::Fail(e))
    }
    pub fn panicking_on(trigger: &str, otherwise: &str) -> Self {
        Self::with(Behaviour::PanicOn(
            trigger.to_string(),
            otherwise.to_string(),
        ))
    }
    pub fn panicking_once_on(trigger: &str, otherwise: &str) -> Self {
        Self::with(Behaviour::PanicOnce(
            trigger.to_string(),
            otherwise.to_string(),
            AtomicBool::new(false),
        ))
    }
    /// Plays `script` call by call (an `Err` fails that call), then answers `then`.
    pub fn scripted(script: Vec<Result<&str, ModelError>>, then: &str) -> Self {
        Self::with(Behaviour::Script(
            Mutex::new(script.into_iter().map(|r| r.map(str::to_string)).collect()),
            then.to_string(),
        ))
    }
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent.load(Ordering::SeqCst)
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn prompts(&self) -> Vec<Prompt> {
        self.prompts.lock().unwrap().clone()
    }
    /// True if two calls for the same lead ever ran at once.
    pub fn saw_same_lead_overlap(&self) -> bool {
        self.overlap_seen.load(Ordering::SeqCst)
    }
}

struct CallGuard<'a> {
    model: &'a FakeModel,
    lead: LeadId,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.model.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut m) = self.model.per_lead.lock()
            && let Some(n) = m.get_mut(&self.lead)
        {
            *n -= 1;
        }
    }
}

#[async_trait]
impl ChatModel for FakeModel {
    fn name(&self) -> &str {
        "fake"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.prompts.lock().unwrap().push(prompt.clone());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        {
            let mut m = self.per_lead.lock().unwrap();
            let n = m.entry(prompt.lead.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                self.overlap_seen.store(true, Ordering::SeqCst);
            }
        }
        let _guard = CallGuard {
            model: self,
            lead: prompt.lead.clone(),
        };
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let text = match &self.behaviour {
            Behaviour::Answer(t) => t.clone(),
            Behaviour::Hang => {
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
            Behaviour::Fail(e) => return Err(e.clone()),
            Behaviour::PanicOn(trigger, otherwise) => {
                let new = &prompt.lines[prompt.lines.len() - prompt.new_messages..];
                if new.iter().any(|l| l.text.contains(trigger.as_str())) {
                    panic!("fake model told to panic on {trigger:?}");
                }
                otherwise.clone()
            }
            Behaviour::PanicOnce(trigger, otherwise, done) => {
                let new = &prompt.lines[prompt.lines.len() - prompt.new_messages..];
                if new.iter().any(|l| l.text.contains(trigger.as_str()))
                    && !done.swap(true, Ordering::SeqCst)
                {
                    panic!("fake model told to panic once on {trigger:?}");
                }
                otherwise.clone()
            }
            Behaviour::Script(script, then) => {
                let next = script.lock().unwrap().pop_front();
                match next {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Err(e),
                    None => then.clone(),
                }
            }
        };
        Ok(Completion {
            text,
            provider: "fake".into(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}
