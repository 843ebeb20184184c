//! The states' sending windows through the running scheduler: a due followup to a lead
//! whose state's window is closed now is held until it opens, while a lead in a state
//! without a rule gets its followup; the unit table is in `actors::send_window`.

use chrono::{Timelike, Utc};
use chrono_tz::America::Chicago;

use actors::ports::LeadId;

use crate::helpers::*;
use crate::scheduler::{answered_with_a_due_followup, fast_followups};

/// A Texas window an hour long that does not hold now in Chicago (Dallas's zone): two hours
/// ahead, or behind when that would cross midnight. Returns the window and its opening.
fn texas_window_not_now() -> (String, chrono::DateTime<Utc>) {
    let now = Utc::now().with_timezone(&Chicago);
    let ahead = now + chrono::Duration::hours(2);
    let open = if ahead.date_naive() == now.date_naive() && ahead.hour() < 23 {
        ahead
    } else {
        now - chrono::Duration::hours(3)
    };
    let close = open + chrono::Duration::hours(1);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        open.hour(),
        open.minute(),
        close.hour(),
        close.minute()
    );
    // The next opening: today's when it is ahead, else tomorrow's.
    let opening = open.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let opening = if opening > now {
        opening
    } else {
        opening + chrono::Duration::days(1)
    };
    (window, opening.with_timezone(&Utc))
}

#[tokio::test]
async fn a_followup_waits_for_its_states_window_and_a_lead_without_a_rule_gets_its_own() {
    let (window, opening) = texas_window_not_now();
    let mut env = fast_followups("24");
    env.push(("SEND_WINDOWS_BY_STATE", format!("FEDERAL=off;TX={window}")));
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let dallas = LeadId::new("+12145550606");
    let chicago = LeadId::new("+13125550606");
    for lead in [&dallas, &chicago] {
        answered_with_a_due_followup(&app, lead).await;
    }
    wait_until(15, "the Illinois lead's followup", || async {
        app.twilio.sent_to(chicago.as_str()).len() == 2
    })
    .await;
    wait_until(15, "the sweep to hold the Texas lead's followup", || async {
        matches!(app.store.followup_of(&dallas).await.unwrap(), Some((0, _, Some(note))) if note == "quiet hours")
    })
    .await;
    let (_, due, _) = app.store.followup_of(&dallas).await.unwrap().unwrap();
    assert_eq!(
        due, opening,
        "held until Texas's window opens ({window} Chicago time)"
    );
    assert_eq!(
        app.twilio.sent_to(dallas.as_str()).len(),
        1,
        "only the reply, nothing outside the window"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_window_that_never_opens_is_refused_by_the_configuration() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .args(["config", "print"])
        .env("SEND_WINDOWS_BY_STATE", "TX=06:00-07:00")
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SEND_WINDOWS_BY_STATE: TX:") && stderr.contains("no moment of the week"),
        "{stderr}"
    );
}
