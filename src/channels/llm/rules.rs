//! Placeholder while the rules responder is written (replaced before commit).
use actors::ports::{ChatModel, Completion, ModelError, Prompt};
use async_trait::async_trait;

#[derive(Clone, Debug)]
pub struct OfficeInfo {
    pub office_name: String,
    pub tour_hours: Vec<u32>,
    pub utc_offset_hours: i32,
}
impl Default for OfficeInfo {
    fn default() -> Self {
        Self {
            office_name: "the leasing office".into(),
            tour_hours: vec![11, 15],
            utc_offset_hours: -6,
        }
    }
}
#[derive(Default)]
pub struct RulesResponder {
    office: OfficeInfo,
}
impl RulesResponder {
    pub fn new(office: OfficeInfo) -> Self {
        Self { office }
    }
    pub fn compose_reply(&self, _p: &Prompt) -> String {
        format!("Thanks for texting {}!", self.office.office_name)
    }
}
#[async_trait]
impl ChatModel for RulesResponder {
    fn name(&self) -> &str {
        "rules"
    }
    async fn complete(&self, p: &Prompt) -> Result<Completion, ModelError> {
        Ok(Completion {
            text: self.compose_reply(p),
            provider: "rules".into(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}
