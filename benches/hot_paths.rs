//! Criterion micro-benchmarks of the hot paths of one inbound SMS: the webhook signature
//! check, parsing and storing the webhook (SQLite, the embedded default), trimming the chat
//! window, and formatting an alert. `cargo bench --bench hot_paths`; figures and the
//! machine are in BENCHMARKS.md. Timings are reported, never asserted.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use actors::alert_router::{Alert, truncate_alert_text};
use actors::keywords;
use actors::ports::{ChatLine, LeadId, Role};
use actors::window::{ChatWindow, WindowLimits};
use criterion::{Criterion, criterion_group, criterion_main};
use lead_agent::channels::twilio::{compute_signature, verify_signature};
use lead_agent::http::twilio::parse_form;
use lead_agent::store::{InboundKind, NewInbound, SqlStore};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "https://leads.example.com/twilio/sms";

/// The form Twilio posts for an inbound SMS (the fields of a real one).
fn twilio_params(sid: &str, from: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("ToState", "IL"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", "CHICAGO"),
        ("FromZip", "60601"),
        ("SmsSid", sid),
        ("FromState", "IL"),
        ("SmsStatus", "received"),
        ("FromCity", "CHICAGO"),
        (
            "Body",
            "Hi, is the 2BR on Lake St still available? Moving in March, budget 1500.",
        ),
        ("FromCountry", "US"),
        ("To", "+13125550000"),
        ("ToZip", "60601"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn encode(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn signature(c: &mut Criterion) {
    let params = twilio_params("SM0123456789abcdef0123456789abcdef", "+13125550100");
    let good = compute_signature(TOKEN, URL, &params);
    c.bench_function("signature/verify_valid", |b| {
        b.iter(|| verify_signature(black_box(TOKEN), black_box(URL), black_box(&params), &good))
    });
    c.bench_function("signature/verify_invalid", |b| {
        b.iter(|| {
            verify_signature(
                black_box(TOKEN),
                black_box(URL),
                black_box(&params),
                "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
        })
    });
}

fn webhook_parse_and_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt.block_on(SqlStore::connect(&url)).unwrap();
    let body = encode(&twilio_params(
        "SM0123456789abcdef0123456789abcdef",
        "+13125550100",
    ));

    c.bench_function("webhook/parse_form", |b| {
        b.iter(|| parse_form(black_box(body.as_bytes())).unwrap())
    });

    // What the handler does per webhook after the signature: parse, classify, one
    // idempotent transaction. A fresh MessageSid and lead each time, as in a batch drop.
    let next = AtomicU64::new(0);
    c.bench_function("webhook/parse_and_store_sqlite", |b| {
        b.to_async(&rt).iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let body = encode(&twilio_params(
                &format!("SM{n:032x}"),
                &format!("+1555{:07}", n % 10_000_000),
            ));
            let store = store.clone();
            async move {
                let params = parse_form(body.as_bytes()).unwrap();
                let field = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap()
                };
                let lead = LeadId::new(field("From"));
                let text = field("Body");
                assert!(keywords::classify(text).is_none());
                store
                    .accept_inbound(
                        NewInbound {
                            message_sid: field("MessageSid"),
                            from: &lead,
                            body: text,
                            synthetic: false,
                        },
                        InboundKind::Conversation,
                    )
                    .await
                    .unwrap()
            }
        })
    });

    // The same write for 64 webhooks in flight at once, as 64 keep-alive clients send
    // them: the store's group-commit writer shares transactions among them. One iteration
    // is all 64; divide by 64 for the cost of one webhook under that load.
    let group = AtomicU64::new(0);
    c.bench_function("webhook/store_sqlite_64_at_once", |b| {
        b.to_async(&rt).iter(|| {
            let base = group.fetch_add(1, Ordering::Relaxed) * 64;
            let store = store.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for n in base..base + 64 {
                    let store = store.clone();
                    tasks.spawn(async move {
                        let lead = LeadId::new(format!("+1666{:07}", n % 10_000_000));
                        store
                            .accept_inbound(
                                NewInbound {
                                    message_sid: &format!("MM{n:032x}"),
                                    from: &lead,
                                    body: "Hi, is the 2BR on Lake St still available?",
                                    synthetic: false,
                                },
                                InboundKind::Conversation,
                            )
                            .await
                            .unwrap()
                    });
                }
                tasks.join_all().await
            }
        })
    });
}

fn line(n: usize) -> ChatLine {
    ChatLine {
        role: if n.is_multiple_of(2) {
            Role::Lead
        } else {
            Role::Agent
        },
        text: format!(
            "{n:05} I'd like to see the 2BR on Lake St; is parking included? {}",
            "x".repeat(120)
        ),
    }
}

fn window(c: &mut Criterion) {
    let limits = WindowLimits {
        max_messages: 40,
        max_bytes: 8192,
    };
    let full = ChatWindow::from_history(limits, (0..100).map(line));
    let next = line(100);
    // A push into a full window: evicts by count and by bytes.
    c.bench_function("window/push_into_full", |b| {
        b.iter_batched(
            || (full.clone(), next.clone()),
            |(mut w, l)| {
                w.push(l);
                w
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // A lead with a long history becoming active: the store returns at most the window,
    // but the trimming must stay bounded even if handed everything.
    let history: Vec<ChatLine> = (0..5000).map(line).collect();
    c.bench_function("window/from_history_5000", |b| {
        b.iter_batched(
            || history.clone(),
            |h| ChatWindow::from_history(limits, h),
            criterion::BatchSize::LargeInput,
        )
    });
}

fn alert_formatting(c: &mut Criterion) {
    let lead = LeadId::new("+13125550100");
    let long = "model call failed: ".to_string() + &"upstream said overloaded; ".repeat(200);
    c.bench_function("alert/build_truncate_serialize", |b| {
        b.iter(|| {
            let alert = Alert::error("turn_abandoned", truncate_alert_text(black_box(&long)))
                .for_lead(&lead);
            serde_json::to_string(&alert).unwrap()
        })
    });
    let short = "Lead asked for a tour on Saturday at 11am".to_string();
    c.bench_function("alert/build_short_serialize", |b| {
        b.iter(|| {
            let alert = Alert::event("tour_request", truncate_alert_text(black_box(&short)))
                .for_lead(&lead);
            serde_json::to_string(&alert).unwrap()
        })
    });
}

criterion_group!(
    benches,
    signature,
    webhook_parse_and_store,
    window,
    alert_formatting
);
criterion_main!(benches);
