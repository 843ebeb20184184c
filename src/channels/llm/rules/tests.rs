//! The responder end to end: whole conversations through [`RulesResponder::compose_reply`]
//! and the [`ChatModel`] face, one test per behaviour a lead would notice.
//!
//! Owns: the tests that need every reader and the composer at once. Must not: test one
//! reader alone (those tests live beside the reader, in its own module).

use actors::ports::{ChatLine, ChatModel, Completion};
use chrono::{DateTime, Utc};

use super::compose::question_for;
use super::fixtures::{
    GREETING_QUESTION, HOLDING, OFFER, agent, chicago, lead, offered_history, office, prompt,
    reply, reply_with, thursday_morning, with,
};
use super::topics::Topic;
use super::{MAX_REPLY_CHARS, OfficeInfo, RulesResponder};

#[test]
fn a_first_message_gets_a_greeting_and_the_first_missing_question() {
    assert_eq!(reply(vec![lead("Hi")], 1), GREETING_QUESTION);
}

#[test]
fn an_empty_conversation_still_gets_a_greeting_and_a_question() {
    assert_eq!(reply(vec![], 0), GREETING_QUESTION);
}

#[test]
fn a_first_message_with_details_is_acknowledged_and_skips_known_questions() {
    assert_eq!(
        reply(vec![lead("Hi, looking for a 2br for March")], 1),
        "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms, moving in March. What monthly budget do you have in mind?"
    );
}

#[test]
fn the_readme_example_is_acknowledged_in_full() {
    assert_eq!(
        reply(vec![lead("2 bedrooms, moving in March, budget 1500")], 1),
        "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms, moving in March, up to $1,500/mo. Will you be using a housing voucher (like Section 8)?"
    );
}

#[test]
fn a_burst_of_messages_gets_one_reply_addressing_all_of_them() {
    let lines = vec![lead("Hi"), lead("is the 2BR free?"), lead("price?")];
    assert_eq!(
        reply(lines, 3),
        "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms. Good questions about availability and price - I'm checking with the team and will get back to you shortly. When are you hoping to move in?"
    );
}

#[test]
fn only_the_new_messages_are_acknowledged() {
    let lines = vec![
        lead("Hi, 2 bedrooms please"),
        agent(question_for(Topic::MoveIn)),
        lead("March"),
    ];
    assert_eq!(
        reply(lines, 1),
        "Got it - moving in March. What monthly budget do you have in mind?"
    );
}

#[test]
fn a_lead_who_is_not_interested_gets_a_polite_close_without_questions() {
    let expected = "Understood - thanks for letting us know, and best of luck! If anything changes, just text us here.";
    for message in [
        "not interested",
        "We already found a place, thanks",
        "please stop texting me",
        "no thanks",
    ] {
        let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead(message)], 1);
        assert_eq!(answer, expected, "for {message:?}");
    }
}

#[test]
fn a_wrong_number_gets_an_apology_and_no_questions() {
    let answer = reply(vec![lead("wrong number")], 1);
    assert_eq!(
        answer,
        "Sorry about that - thanks for letting us know. Have a great day!"
    );
}

#[test]
fn not_interested_in_one_unit_type_is_not_a_close() {
    let answer = reply(
        vec![
            lead("Hi"),
            agent(GREETING_QUESTION),
            lead("not interested in a studio, need 2 bedrooms"),
        ],
        1,
    );
    assert_eq!(
        answer,
        "Got it - 2 bedrooms. When are you hoping to move in?"
    );
}

#[test]
fn a_bare_answer_to_our_question_is_understood_in_context() {
    let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead("2")], 1);
    assert_eq!(
        answer,
        "Got it - 2 bedrooms. When are you hoping to move in?"
    );

    let lines = vec![
        lead("2br asap, about 1200"),
        agent(question_for(Topic::Voucher)),
        lead("no"),
    ];
    assert_eq!(
        reply(lines, 1),
        "Got it - no voucher. Do you have any pets?"
    );
}

#[test]
fn an_unanswered_question_is_not_asked_twice_in_a_row() {
    let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead("ok")], 1);
    assert_eq!(answer, "Thanks! When are you hoping to move in?");
}

#[test]
fn a_question_asked_twice_already_is_not_asked_again() {
    let lines = vec![
        lead("Hi"),
        agent(GREETING_QUESTION),
        lead("ok"),
        agent(question_for(Topic::MoveIn)),
        lead("hmm"),
        agent(question_for(Topic::Bedrooms)),
        lead("ok"),
        agent(question_for(Topic::MoveIn)),
        lead("sure"),
    ];
    assert_eq!(
        reply(lines, 1),
        "Thanks! What monthly budget do you have in mind?"
    );
}

#[test]
fn a_question_we_cannot_answer_gets_a_holding_reply_and_the_next_question() {
    let answer = reply(
        vec![
            lead("Hi"),
            agent(GREETING_QUESTION),
            lead("do you have a gym?"),
        ],
        1,
    );
    assert_eq!(answer, format!("{HOLDING} When are you hoping to move in?"));

    let answer = reply(
        vec![
            lead("Hi"),
            agent(GREETING_QUESTION),
            lead("2 bed. Is parking included?"),
        ],
        1,
    );
    assert_eq!(
        answer,
        "Got it - 2 bedrooms. Good question about parking - I'm checking with the team and will get back to you shortly. When are you hoping to move in?"
    );
}

#[test]
fn a_tour_request_gets_two_concrete_slots_from_now() {
    assert_eq!(
        reply(vec![lead("can I see it?")], 1),
        "Hi! Thanks for texting Maple Court and for your interest. Happy to set up a tour! I have Thu Dec 3 at 11am or 3pm - which works for you?"
    );
}

#[test]
fn a_tour_request_with_a_price_question_gets_the_slots_and_a_holding_reply() {
    let answer = reply(
        vec![
            lead("Hi"),
            agent(GREETING_QUESTION),
            lead("can I tour it? how much is rent?"),
        ],
        1,
    );
    assert_eq!(
        answer,
        "Good question about price - I'm checking with the team and will get back to you shortly. Happy to set up a tour! I have Thu Dec 3 at 11am or 3pm - which works for you?"
    );
}

#[test]
fn tour_slots_late_in_the_day_start_the_next_business_day() {
    let answer = reply_with(
        office(),
        vec![lead("want a tour")],
        1,
        chicago(12, 3, 16, 0),
    );
    assert!(
        answer.contains("I have Fri Dec 4 at 11am or 3pm"),
        "{answer}"
    );
}

#[test]
fn a_complete_qualification_leads_to_a_tour_offer() {
    let lines = vec![
        lead("2br asap, $1200"),
        agent(
            "Got it - 2 bedrooms, moving in ASAP, up to $1,200/mo. Will you be using a housing voucher (like Section 8)?",
        ),
        lead("no voucher, and I have a cat"),
    ];
    assert_eq!(
        reply(lines, 1),
        format!("Got it - no voucher, with a pet. {OFFER}")
    );
}

#[test]
fn picking_an_offered_time_confirms_that_slot() {
    let answer = reply(with(offered_history(), &[lead("3pm works")]), 1);
    assert_eq!(
        answer,
        "You're set for Thu Dec 3 at 3pm. A leasing agent will text you to confirm."
    );
}

#[test]
fn a_yes_to_a_tour_offer_confirms_the_first_slot() {
    let answer = reply(with(offered_history(), &[lead("Yes!")]), 1);
    assert_eq!(
        answer,
        "You're set for Thu Dec 3 at 11am. A leasing agent will text you to confirm."
    );
}

#[test]
fn naming_another_day_books_that_day() {
    let answer = reply(
        with(offered_history(), &[lead("how about saturday at 3")]),
        1,
    );
    assert_eq!(
        answer,
        "You're set for Sat Dec 5 at 3pm. A leasing agent will text you to confirm."
    );
}

#[test]
fn a_confirmation_still_answers_a_question_in_the_same_message() {
    let answer = reply(
        with(
            offered_history(),
            &[lead("thursday at 11? also is parking free?")],
        ),
        1,
    );
    assert_eq!(
        answer,
        "You're set for Thu Dec 3 at 11am. A leasing agent will text you to confirm. Good question about parking - I'm checking with the team and will get back to you shortly."
    );
}

#[test]
fn declining_the_offered_times_asks_what_works_instead() {
    let answer = reply(with(offered_history(), &[lead("I can't do thursday")]), 1);
    assert_eq!(
        answer,
        "No problem - what day works better for you? Tours run Mon-Sat at 11am or 3pm."
    );
}

#[test]
fn a_day_without_tours_is_answered_with_the_tour_days() {
    let answer = reply(with(offered_history(), &[lead("sunday?")]), 1);
    assert_eq!(
        answer,
        "Sorry, that time isn't open. Tours run Mon-Sat at 11am or 3pm - what day works for you?"
    );
}

#[test]
fn a_yes_to_slots_that_have_passed_gets_fresh_slots() {
    let answer = reply_with(
        office(),
        with(offered_history(), &[lead("yes")]),
        1,
        chicago(12, 5, 17, 0),
    );
    assert_eq!(
        answer,
        "Sorry, those times have passed. I have Mon Dec 7 at 11am or 3pm for a tour - which works for you?"
    );
}

#[test]
fn a_yes_to_an_offer_we_cannot_read_is_passed_to_the_team() {
    let lines = vec![
        lead("2br asap, $1200, no voucher, no pets"),
        agent("Would you like to schedule a tour this week?"),
        lead("yes please"),
    ];
    assert_eq!(
        reply(lines, 1),
        "Great! A leasing agent will text you shortly to lock in the time."
    );
}

#[test]
fn a_question_after_a_tour_offer_does_not_repeat_the_offer() {
    let answer = reply(with(offered_history(), &[lead("what's the rent?")]), 1);
    assert_eq!(
        answer,
        "Good question about price - I'm checking with the team and will get back to you shortly."
    );
}

#[test]
fn a_booked_lead_saying_thanks_is_not_asked_anything() {
    let lines = with(
        offered_history(),
        &[
            lead("Thu 3pm"),
            agent("You're set for Thu Dec 3 at 3pm. A leasing agent will text you to confirm."),
            lead("thanks!"),
        ],
    );
    assert_eq!(
        reply(lines, 1),
        "Thanks! A leasing agent will text you to confirm your tour."
    );
}

#[test]
fn a_prompt_that_miscounts_its_new_messages_still_answers_the_trailing_lead_lines() {
    let lines = vec![lead("Hi"), agent(GREETING_QUESTION), lead("2 bedrooms")];
    let expected = "Got it - 2 bedrooms. When are you hoping to move in?";
    assert_eq!(reply(lines.clone(), 0), expected);
    assert_eq!(
        reply(vec![lead("Hi"), lead("2 bedrooms")], 99),
        "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms. When are you hoping to move in?"
    );
}

/// One conversation per branch of `compose_reply`.
fn every_branch() -> Vec<(Vec<ChatLine>, usize, DateTime<Utc>)> {
    let morning = thursday_morning();
    vec![
        (vec![lead("Hi")], 1, morning),
        (
            vec![
                lead("Hi"),
                lead("is the 2BR free?"),
                lead("price?"),
                lead("parking? utilities? deposit? laundry? lease?"),
            ],
            4,
            morning,
        ),
        (vec![lead("not interested")], 1, morning),
        (vec![lead("wrong number")], 1, morning),
        (
            vec![lead("can I see it? how much is it? where is it?")],
            1,
            morning,
        ),
        (
            vec![lead("Studio asap $1,200 with a housing voucher and 2 cats")],
            1,
            morning,
        ),
        (with(offered_history(), &[lead("3pm")]), 1, morning),
        (
            with(
                offered_history(),
                &[lead("yes, is parking free? utilities?")],
            ),
            1,
            morning,
        ),
        (with(offered_history(), &[lead("neither")]), 1, morning),
        (
            with(offered_history(), &[lead("sunday at 8pm")]),
            1,
            morning,
        ),
        (
            with(offered_history(), &[lead("yes")]),
            1,
            chicago(12, 9, 9, 0),
        ),
        (
            vec![lead("Hi"), agent(GREETING_QUESTION), lead("ok")],
            1,
            morning,
        ),
        (
            vec![lead("Hi"), agent(GREETING_QUESTION), lead("what?")],
            1,
            morning,
        ),
    ]
}

#[test]
fn every_branch_replies_in_plain_text_within_320_characters() {
    let long_name = "The Residences at Maple Court and Lakeshore Gardens Apartment Homes, a Premier Lakefront Rental Community on the North Side of Chicago with Resort-Style Amenities, a Fitness Center, a Rooftop Pool and Covered Parking".to_string();
    for name in ["Maple Court".to_string(), long_name.clone()] {
        let info = OfficeInfo {
            office_name: name,
            ..OfficeInfo::default()
        };
        for (lines, new, now) in every_branch() {
            let answer = reply_with(info.clone(), lines.clone(), new, now);
            let length = answer.chars().count();
            assert!(
                (1..=MAX_REPLY_CHARS).contains(&length),
                "{length} chars: {answer}"
            );
            assert!(
                !answer.contains(['*', '#', '`', '_', '[', ']', '\n']),
                "markdown in: {answer}"
            );
            // One non-GSM-7 character (an em dash, a curly quote) switches the whole SMS
            // to UCS-2: 70 characters a segment instead of 160, more than twice the cost.
            assert!(answer.is_ascii(), "non-GSM-7 character in: {answer}");
        }
    }
    // The long name really does push a greeting past the limit: the bound is being enforced,
    // not merely never reached.
    assert!(long_name.chars().count() + 150 > MAX_REPLY_CHARS);
}

#[test]
fn the_same_prompt_always_gets_the_same_reply() {
    for (lines, new, now) in every_branch() {
        let p = prompt(lines, new, now);
        let first = RulesResponder::new(office()).compose_reply(&p);
        let second = RulesResponder::new(office()).compose_reply(&p.clone());
        assert_eq!(first, second);
    }
}

#[tokio::test]
async fn the_chat_model_answers_as_rules_with_no_tokens_and_never_fails() {
    let responder = RulesResponder::new(office());
    let p = prompt(vec![lead("Hi")], 1, thursday_morning());
    let completion = responder.complete(&p).await.unwrap();
    assert_eq!(responder.name(), "rules");
    assert_eq!(
        completion,
        Completion {
            text: GREETING_QUESTION.to_string(),
            provider: "rules".to_string(),
            input_tokens: 0,
            output_tokens: 0,
        }
    );
    let default = RulesResponder::default().complete(&p).await.unwrap();
    assert!(
        default
            .text
            .starts_with("Hi! Thanks for texting the leasing office and for your interest.")
    );
}
