//! `lead-agent-fakes`: the vendors' fakes of the tests (Twilio and Discord, `testkit`) as a
//! process of their own, for a service started outside a test: `scripts/image.sh` runs the
//! image's containers against them, so a rehearsal's replies and alerts land somewhere it
//! can read. Prints the variables that point a service at them (`KEY=VALUE` lines, to
//! stdout), then every half second rewrites two JSON-lines files in the directory given:
//! `twilio.jsonl` (each SMS sent) and `discord.jsonl` (each message created).
//!
//! Must not: be shipped — testkit is never a dependency of the service binary — or keep
//! anything but those two files.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use testkit::fake_discord::FakeDiscord;
use testkit::fake_twilio::FakeTwilio;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or_else(|| {
        std::io::Error::other(
            "usage: lead-agent-fakes DIR (where twilio.jsonl and discord.jsonl go)",
        )
    })?);
    std::fs::create_dir_all(&dir)?;
    let twilio = FakeTwilio::start().await;
    let discord = FakeDiscord::start().await;
    println!("TWILIO_ACCOUNT_SID=ACfake");
    println!("TWILIO_API_BASE={}", twilio.url);
    for (key, value) in discord.env() {
        println!("{key}={value}");
    }
    loop {
        let sms: Vec<String> = twilio
            .sent()
            .iter()
            .map(|s| {
                json!({"sid": s.sid, "to": s.to, "body": s.body, "status": s.status}).to_string()
            })
            .collect();
        let messages: Vec<String> = discord
            .created()
            .iter()
            .map(|c| json!({"channel": c.channel, "at": c.created_at, "body": c.body}).to_string())
            .collect();
        write_lines(&dir.join("twilio.jsonl"), &sms)?;
        write_lines(&dir.join("discord.jsonl"), &messages)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whole-file replace through a rename, so a reader never sees half a line.
fn write_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
