//! The brain's settings (issue 5): the second provider (Gemini), the model chain's failure
//! policy, `USE_AGENT_CORE`, the buildings catalog and the CRM; the chain's order and OpenAI
//! are read beside it (`super::providers`).
//!
//! Must not: load the catalog or build clients (`crate::startup` does); a file name with an
//! unknown extension is refused here, its contents at start-up.

use std::time::Duration;

use super::reader::Reader;
use super::secret::Secret;
use super::settings::AnthropicSettings;

/// The second provider, the failure policy and the brain (issue 5).
#[derive(Debug, Clone)]
pub struct BrainSettings {
    /// `GOOGLE_API_KEY` with `MAY_AI_MODEL`.
    pub gemini: Option<AnthropicSettings>,
    pub gemini_base_url: String,
    pub retry_after_cap: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub agent_mode: actors::brain::AgentMode,
    pub buildings_file: Option<String>,
    pub fub_api: Option<Secret>,
    pub fub_api_base: String,
    /// `FUB_TEXTING_SERVICE`: where the text log posts (else `fub_api_base`).
    pub fub_texting_service: Option<String>,
    pub fub_system: String,
    pub fub_system_key: Option<Secret>,
    /// `BUILDING_SERVICE_API`: the catalog's URL; `None`: the file or the sample.
    pub building_service: Option<String>,
    pub building_refresh: Duration,
    /// OpenAI and the chain's order (`LLM_PROVIDERS`).
    pub providers: super::providers::ProviderSettings,
}

pub(super) fn brain_settings(r: &mut Reader<'_>) -> BrainSettings {
    let agent_mode = match r.string("USE_AGENT_CORE").parse() {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(format!("USE_AGENT_CORE: {e}"));
            actors::brain::AgentMode::Plain
        }
    };
    let buildings_file = r.raw("BUILDINGS_FILE").filter(|f| !f.trim().is_empty());
    if let Some(f) = &buildings_file
        && !crate::catalog::has_known_extension(f)
    {
        r.problems.push(format!(
            "BUILDINGS_FILE={f:?} must end in .yaml, .yml or .json"
        ));
    }
    BrainSettings {
        gemini: r.raw("GOOGLE_API_KEY").map(|key| AnthropicSettings {
            api_key: Secret::new(key),
            model: r.string("MAY_AI_MODEL"),
        }),
        gemini_base_url: r.string("GEMINI_API_BASE"),
        retry_after_cap: {
            let secs: f64 = r.parse("LLM_RETRY_AFTER_CAP_SECS");
            if secs.is_finite() && (0.0..=3600.0).contains(&secs) {
                Duration::from_secs_f64(secs)
            } else {
                r.problems
                    .push("LLM_RETRY_AFTER_CAP_SECS must be between 0 and 3600 seconds".into());
                Duration::from_secs(5)
            }
        },
        breaker_failures: r.positive("LLM_BREAKER_FAILURES"),
        breaker_open: r.seconds("LLM_BREAKER_OPEN_SECS"),
        agent_mode,
        buildings_file,
        fub_api: r.raw("FUB_API").map(Secret::new),
        fub_api_base: r.string("FUB_API_BASE"),
        fub_texting_service: url_var(r, "FUB_TEXTING_SERVICE"),
        fub_system: r.string("FUB_SYSTEM"),
        fub_system_key: r.raw("FUB_SYSTEM_KEY").map(Secret::new),
        building_service: url_var(r, "BUILDING_SERVICE_API"),
        building_refresh: r.seconds("BUILDING_SERVICE_REFRESH_SECS"),
        providers: super::providers::provider_settings(r),
    }
}

/// An optional URL variable; a value that is not a URL is a problem.
fn url_var(r: &mut Reader<'_>, name: &str) -> Option<String> {
    let value = r.raw(name).filter(|v| !v.trim().is_empty())?;
    if url::Url::parse(&value).is_err() {
        r.problems.push(format!("{name}={value:?} is not a URL"));
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Settings;

    #[test]
    fn use_agent_core_accepts_true_false_shadow_and_names_itself_otherwise() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.brain.agent_mode, actors::brain::AgentMode::Plain);
        let s = Settings::from_map(&HashMap::from([("USE_AGENT_CORE", "shadow")])).unwrap();
        assert_eq!(s.brain.agent_mode, actors::brain::AgentMode::Shadow);
        let err = Settings::from_map(&HashMap::from([
            ("USE_AGENT_CORE", "sometimes"),
            ("BUILDINGS_FILE", "buildings.txt"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("USE_AGENT_CORE") && err.contains("true, false or shadow"),
            "{err}"
        );
        assert!(err.contains("BUILDINGS_FILE"), "{err}");
    }

    #[test]
    fn gemini_is_configured_by_its_key_with_the_default_model() {
        let s = Settings::from_map(&HashMap::from([("GOOGLE_API_KEY", "g")])).unwrap();
        assert_eq!(s.brain.gemini.unwrap().model, "gemini-2.5-flash");
    }
}
