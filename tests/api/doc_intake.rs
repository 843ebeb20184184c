//! The mailbox document intake (`GMAIL_SERVICE_ACCOUNT_JSON`): a lead who texted us mails
//! a document with their number in it; the scheduler's `doc_intake` job, running, takes it
//! from the fake Gmail (after a real service-account token exchange at the fake token
//! endpoint), stores the file in the lead's folder in the fake Drive, opens the lead's
//! `doc_review` SLA (seen over /ops) and posts REQUIREMENTS_NOTE to its Discord channel —
//! once, however many runs follow; a second mail while the review is open is told once more. A token endpoint that fails is alerted and loses
//! nothing: the mail is taken once it answers again. Drive failing: the mail is retried
//! with backoff and stored once. Without the Drive folder: the files are named, not stored.

use testkit::fake_google::{FakeGoogle, FakeMail};

use crate::fake_discord::FakeDiscord;
use crate::helpers::{TestApp, TestOptions, spawn_app_with, wait_until};

const LEAD: &str = "+13125550186";
const STAFF: &str = "staff@bluelake.example";
const PARENT: &str = "1ParentFolderOfTheOffice";
const NOTE_CHANNEL: &str = "4343";

async fn app_with(google: &FakeGoogle, discord: &FakeDiscord) -> TestApp {
    app_with_drive(google, discord, true).await
}

async fn app_with_drive(google: &FakeGoogle, discord: &FakeDiscord, drive: bool) -> TestApp {
    let mut env = discord.env();
    env.extend([
        (
            "GMAIL_SERVICE_ACCOUNT_JSON",
            google.service_account_json("intake@lead-agent.iam.gserviceaccount.com"),
        ),
        (
            "GDRIVE_SERVICE_ACCOUNT_JSON",
            google.service_account_json("drive@lead-agent.iam.gserviceaccount.com"),
        ),
        ("YGL_DRIVE_PARENT_FOLDER_ID", PARENT.to_string()),
        ("BLUELAKE_STAFF_EMAIL", STAFF.to_string()),
        ("GMAIL_API_BASE", google.url.clone()),
        ("GDRIVE_API_BASE", google.url.clone()),
        (
            "DISCORD_CHANNEL_REQUIREMENTS_NOTE",
            NOTE_CHANNEL.to_string(),
        ),
        ("SCHEDULE_HEARTBEAT", "off".to_string()),
        // Every second, so the test waits for runs, not for the default minute.
        ("SCHEDULE_DOC_INTAKE", "* * * * * *".to_string()),
    ]);
    if !drive {
        env.retain(|(k, _)| *k != "YGL_DRIVE_PARENT_FOLDER_ID");
    }
    spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await
}

fn pay_stub_mail() -> FakeMail {
    FakeMail {
        from: "Dana Reyes <dana.reyes@example.com>".into(),
        subject: "Documents for the application".into(),
        body: "Hi, here is my pay stub. My cell is (312) 555-0186.\n-- Dana".into(),
        attachments: vec![(
            "paystub-october.pdf".into(),
            "application/pdf".into(),
            b"%PDF-1.4 pay stub\r\n\r\n--not-a-boundary\r\n".to_vec(),
        )],
    }
}

async fn job_runs(app: &TestApp) -> i64 {
    app.store
        .scheduled_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.name == "doc_intake")
        .map(|j| j.runs)
        .unwrap_or(0)
}

async fn wait_runs(app: &TestApp, more: i64) {
    let start = job_runs(app).await;
    wait_until(20, "more doc_intake runs", || async {
        job_runs(app).await >= start + more
    })
    .await;
}

async fn open_doc_reviews(app: &TestApp) -> Vec<serde_json::Value> {
    app.get_json("/ops/sla").await["open"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["lead"] == LEAD && s["kind"] == "doc_review")
        .collect()
}

/// The lead exists once they have texted us (and been answered).
async fn lead_texts(app: &TestApp) {
    app.post_sms(LEAD, "I'd like to apply for the 2 bedroom")
        .await;
    app.wait_for_sms(LEAD, 1).await;
}

#[tokio::test]
async fn a_leads_mailed_document_lands_in_their_drive_folder_and_opens_doc_review_once() {
    let google = FakeGoogle::start().await;
    let discord = FakeDiscord::start().await;
    let app = app_with(&google, &discord).await;
    lead_texts(&app).await;
    let stranger = google.add_mail(FakeMail {
        from: "newsletter@example.com".into(),
        subject: "Our October deals".into(),
        body: "Call 1-800-555-0100 now".into(),
        attachments: vec![("flyer.pdf".into(), "application/pdf".into(), b"ad".to_vec())],
    });
    let mail = google.add_mail(pay_stub_mail());

    wait_until(20, "the pay stub in the lead's Drive folder", || async {
        !google.files_in(PARENT, LEAD).is_empty()
    })
    .await;
    let files = google.files_in(PARENT, LEAD);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].name, "paystub-october.pdf");
    assert_eq!(files[0].mime_type, "application/pdf");
    assert_eq!(
        files[0].content,
        pay_stub_mail().attachments[0].2,
        "uploaded byte for byte"
    );
    assert_eq!(files[0].app_properties["gmail_message_id"], mail);

    wait_until(20, "the doc_review SLA open over /ops", || async {
        !open_doc_reviews(&app).await.is_empty()
    })
    .await;
    wait_until(20, "REQUIREMENTS_NOTE at its Discord channel", || async {
        !discord.texts_in(NOTE_CHANNEL).is_empty()
    })
    .await;
    let note = discord.texts_in(NOTE_CHANNEL).remove(0);
    assert!(note.contains("paystub-october.pdf"), "{note}");
    assert!(note.contains("drive.google.com/drive/folders/"), "{note}");

    // The Gmail token acts for the staff mailbox; Drive's is the Drive account's own.
    let exchanges = google.token_exchanges();
    let gmail = exchanges
        .iter()
        .find(|e| e.scope.ends_with("gmail.readonly"))
        .expect("a Gmail token");
    assert_eq!(gmail.iss, "intake@lead-agent.iam.gserviceaccount.com");
    assert_eq!(gmail.sub.as_deref(), Some(STAFF));
    let drive = exchanges
        .iter()
        .find(|e| e.scope.ends_with("/auth/drive"))
        .expect("a Drive token");
    assert_eq!(drive.sub, None);
    assert!(google.gmail_queries()[0].contains("has:attachment"));

    // Later runs take nothing again: one file, one SLA, one note; tokens reused.
    wait_runs(&app, 3).await;
    assert_eq!(google.files_in(PARENT, LEAD).len(), 1);
    let folders: Vec<_> = google
        .drive_files()
        .into_iter()
        .filter(|f| f.mime_type == "application/vnd.google-apps.folder")
        .collect();
    assert_eq!(folders.len(), 1, "one folder per lead: {folders:?}");
    assert_eq!(folders[0].name, LEAD);
    assert_eq!(open_doc_reviews(&app).await.len(), 1);
    assert_eq!(discord.texts_in(NOTE_CHANNEL).len(), 1);
    assert_eq!(
        google.token_exchanges().len(),
        2,
        "each token exchanged once"
    );
    let rows = app.store.doc_intake_rows().await.unwrap();
    let state_of = |id: &str| {
        rows.iter()
            .find(|r| r.gmail_id == id)
            .map(|r| (r.state.clone(), r.attempts, r.lead.clone()))
    };
    assert_eq!(
        state_of(&mail),
        Some(("processed".into(), 1, Some(LEAD.into())))
    );
    assert_eq!(state_of(&stranger), Some(("unmatched".into(), 1, None)));
    assert!(
        google.drive_files().iter().all(|f| f.name != "flyer.pdf"),
        "a stranger's mail is not stored"
    );

    // More documents while the review is open: same folder, same SLA, told once more.
    let mut id_mail = pay_stub_mail();
    id_mail.subject = "My ID".into();
    id_mail.attachments = vec![("license.jpg".into(), "image/jpeg".into(), b"jpeg".to_vec())];
    google.add_mail(id_mail);
    wait_until(20, "the second note at Discord", || async {
        discord.texts_in(NOTE_CHANNEL).len() == 2
    })
    .await;
    let more = discord.texts_in(NOTE_CHANNEL).remove(1);
    assert!(
        more.contains("More documents") && more.contains("license.jpg"),
        "{more}"
    );
    assert_eq!(google.files_in(PARENT, LEAD).len(), 2);
    assert_eq!(open_doc_reviews(&app).await.len(), 1);
    wait_runs(&app, 2).await;
    assert_eq!(
        discord.texts_in(NOTE_CHANNEL).len(),
        2,
        "each mail told once"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_alerted_and_the_mail_is_taken_once_it_answers() {
    let google = FakeGoogle::start().await;
    let discord = FakeDiscord::start().await;
    google.fail_token(Some(503));
    let app = app_with(&google, &discord).await;
    lead_texts(&app).await;
    google.add_mail(pay_stub_mail());

    wait_until(20, "doc_intake_failed", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "doc_intake_failed")
    })
    .await;
    wait_runs(&app, 2).await;
    assert!(
        app.store.doc_intake_rows().await.unwrap().is_empty(),
        "nothing taken"
    );
    assert!(google.drive_files().is_empty());
    assert!(open_doc_reviews(&app).await.is_empty());
    let failed: Vec<_> = app
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["event"] == "doc_intake_failed")
        .collect();
    assert_eq!(failed.len(), 1, "paced: {failed:?}");
    assert_eq!(failed[0]["kind"], "error");

    google.fail_token(None);
    wait_until(20, "the pay stub stored after the outage", || async {
        google.files_in(PARENT, LEAD).len() == 1
    })
    .await;
    wait_until(20, "the doc_review SLA", || async {
        open_doc_reviews(&app).await.len() == 1
    })
    .await;
    wait_runs(&app, 2).await;
    assert_eq!(google.files_in(PARENT, LEAD).len(), 1, "once");
    app.stop().await;
}

#[tokio::test]
async fn drive_failing_is_retried_with_backoff_and_the_file_stored_once_it_is_back() {
    let google = FakeGoogle::start().await;
    let discord = FakeDiscord::start().await;
    google.fail_drive(Some(503));
    let app = app_with(&google, &discord).await;
    lead_texts(&app).await;
    let mail = google.add_mail(pay_stub_mail());
    wait_until(
        20,
        "the mail waiting for a retry after two attempts",
        || async {
            app.store
                .doc_intake_rows()
                .await
                .unwrap()
                .iter()
                .any(|r| r.gmail_id == mail && r.state == "retry" && r.attempts >= 2)
        },
    )
    .await;
    assert!(google.drive_files().is_empty());
    assert!(
        open_doc_reviews(&app).await.is_empty(),
        "no SLA before the files are in"
    );

    google.fail_drive(None);
    wait_until(20, "the pay stub stored once Drive is back", || async {
        google.files_in(PARENT, LEAD).len() == 1
    })
    .await;
    wait_until(20, "processed", || async {
        app.store
            .doc_intake_rows()
            .await
            .unwrap()
            .iter()
            .any(|r| r.gmail_id == mail && r.state == "processed")
    })
    .await;
    wait_runs(&app, 2).await;
    assert_eq!(google.files_in(PARENT, LEAD).len(), 1);
    assert_eq!(open_doc_reviews(&app).await.len(), 1);
    assert_eq!(discord.texts_in(NOTE_CHANNEL).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn without_the_drive_folder_the_files_are_named_and_doc_review_still_opens() {
    let google = FakeGoogle::start().await;
    let discord = FakeDiscord::start().await;
    let app = app_with_drive(&google, &discord, false).await;
    lead_texts(&app).await;
    google.add_mail(pay_stub_mail());
    wait_until(20, "the doc_review SLA", || async {
        open_doc_reviews(&app).await.len() == 1
    })
    .await;
    wait_until(20, "REQUIREMENTS_NOTE", || async {
        !discord.texts_in(NOTE_CHANNEL).is_empty()
    })
    .await;
    let note = discord.texts_in(NOTE_CHANNEL).remove(0);
    assert!(note.contains("paystub-october.pdf"), "{note}");
    assert!(
        note.contains("not stored in Drive: YGL_DRIVE_PARENT_FOLDER_ID is not set"),
        "{note}"
    );
    assert!(google.drive_files().is_empty());
    assert!(
        google
            .token_exchanges()
            .iter()
            .all(|e| !e.scope.ends_with("/auth/drive")),
        "Drive is never asked"
    );
    app.stop().await;
}
