//! The model chain's order (`LLM_PROVIDERS`) and the third provider's settings (OpenAI:
//! `OPENAI_API_KEY`, `OPENAI_MODEL`, `OPENAI_API_BASE`).
//!
//! Owns: parsing the comma list — known names only, each once, the rules responder at most
//! as the last entry (it is always last and cannot be left out) — and the default order
//! (`anthropic,gemini`, then `openai` when it is keyed).
//! Must not: build clients (`crate::startup::worker` does, skipping a listed provider
//! whose key is unset with a log line) or decide failover (the pool does).

use super::reader::Reader;
use super::secret::Secret;
use super::settings::AnthropicSettings;

/// A model provider the chain can hold (the rules responder is not one: it is always last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    Gemini,
    OpenAi,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::OpenAi => "openai",
        }
    }

    /// The variable whose value turns this provider on.
    pub fn key_var(self) -> &'static str {
        match self {
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::Gemini => "GOOGLE_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        }
    }
}

/// `LLM_PROVIDERS` as written, or the default order. `Err` names the problem.
pub fn parse_order(raw: Option<&str>, openai_keyed: bool) -> Result<Vec<Provider>, String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        let mut order = vec![Provider::Anthropic, Provider::Gemini];
        if openai_keyed {
            order.push(Provider::OpenAi);
        }
        return Ok(order);
    };
    let names: Vec<String> = raw
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut order = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let provider = match name.as_str() {
            "anthropic" => Provider::Anthropic,
            "gemini" => Provider::Gemini,
            "openai" => Provider::OpenAi,
            "rules" if i + 1 == names.len() => continue,
            "rules" => {
                return Err(
                    "LLM_PROVIDERS: `rules` can only be last (the rules responder always answers last)"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "LLM_PROVIDERS: unknown provider {other:?} (known: anthropic, gemini, openai; the rules responder is always last)"
                ));
            }
        };
        if order.contains(&provider) {
            return Err(format!("LLM_PROVIDERS: {name} is listed twice"));
        }
        order.push(provider);
    }
    Ok(order)
}

/// OpenAI's key and model, the base URL, and the chain's order.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub openai: Option<AnthropicSettings>,
    pub openai_base_url: String,
    pub order: Vec<Provider>,
}

pub(super) fn provider_settings(r: &mut Reader<'_>) -> ProviderSettings {
    let openai = r.raw("OPENAI_API_KEY").map(|key| AnthropicSettings {
        api_key: Secret::new(key),
        model: r.string("OPENAI_MODEL"),
    });
    let order = match parse_order(r.raw("LLM_PROVIDERS").as_deref(), openai.is_some()) {
        Ok(o) => o,
        Err(e) => {
            r.problems.push(e);
            Vec::new()
        }
    };
    let openai_base_url = r.string("OPENAI_API_BASE");
    if url::Url::parse(&openai_base_url).is_err() {
        r.problems
            .push(format!("OPENAI_API_BASE={openai_base_url:?} is not a URL"));
    }
    ProviderSettings {
        openai,
        openai_base_url,
        order,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::Provider::*;
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_default_order_is_anthropic_gemini_then_openai_when_keyed() {
        assert_eq!(parse_order(None, false).unwrap(), vec![Anthropic, Gemini]);
        assert_eq!(
            parse_order(None, true).unwrap(),
            vec![Anthropic, Gemini, OpenAi]
        );
        let s = Settings::from_map(&HashMap::from([("OPENAI_API_KEY", "sk")])).unwrap();
        assert_eq!(s.brain.providers.order, vec![Anthropic, Gemini, OpenAi]);
        assert_eq!(s.brain.providers.openai.unwrap().model, "gpt-4o-mini");
    }

    #[test]
    fn llm_providers_orders_the_chain_and_rules_may_only_close_it() {
        assert_eq!(
            parse_order(Some(" OpenAI , anthropic"), true).unwrap(),
            vec![OpenAi, Anthropic]
        );
        assert_eq!(
            parse_order(Some("gemini,rules"), false).unwrap(),
            vec![Gemini]
        );
        assert_eq!(parse_order(Some("rules"), false).unwrap(), vec![]);
        assert!(
            parse_order(Some("rules,gemini"), false)
                .unwrap_err()
                .contains("only be last")
        );
        assert!(
            parse_order(Some("gemini,gemini"), false)
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn an_unknown_provider_is_a_config_error_naming_it() {
        let err = Settings::from_map(&HashMap::from([("LLM_PROVIDERS", "anthropic,mistral")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LLM_PROVIDERS") && err.contains("mistral"),
            "{err}"
        );
    }
}
