//! The catalog answers against the bundled sample's facts.

use super::*;

fn sample() -> Catalog {
    serde_yaml_ng_free_sample()
}

/// The bundled sample's facts (deploy/buildings.sample.yaml), built here: the actor
/// crate reads no files.
fn serde_yaml_ng_free_sample() -> Catalog {
    let unit = |bedrooms, rent, available: &str| Unit {
        bedrooms,
        bathrooms: Some(1.0),
        rent,
        available: Some(available.into()),
    };
    let b = |id: &str,
             name: &str,
             address: &str,
             units,
             vouchers,
             pets: Option<&str>,
             amenities: &[&str],
             tours: &str| Building {
        id: id.into(),
        name: name.into(),
        address: address.into(),
        neighborhood: None,
        units,
        accepts_vouchers: vouchers,
        pets: pets.map(String::from),
        amenities: amenities.iter().map(|a| a.to_string()).collect(),
        tour_hours: Some(tours.into()),
        notes: None,
    };
    Catalog {
        buildings: vec![
            b(
                "lakeview-lofts",
                "Lakeview Lofts",
                "1200 W Lake St",
                vec![
                    unit(0, 1250, "now"),
                    unit(1, 1450, "now"),
                    unit(2, 1900, "2027-01-01"),
                ],
                true,
                Some("cats and dogs under 40 lb, $35/month pet rent"),
                &["in-unit laundry", "fitness room"],
                "Mon-Sat 10am-6pm",
            ),
            b(
                "maple-court",
                "Maple Court",
                "4410 N Maple Ave",
                vec![unit(2, 1600, "now"), unit(3, 2150, "2026-12-15")],
                true,
                None,
                &["laundry on site", "heat included"],
                "Mon-Fri 11am-5pm",
            ),
            b(
                "riverside-flats",
                "Riverside Flats",
                "75 S River Rd",
                vec![unit(1, 1700, "now")],
                false,
                Some("cats only"),
                &["doorman"],
                "Daily 9am-7pm",
            ),
        ],
    }
}

#[test]
fn a_pet_is_read_with_its_weight() {
    assert_eq!(
        read_pet("I have a 60 lb lab"),
        Some(Pet {
            kind: PetKind::Dog,
            weight_lb: Some(60)
        })
    );
    assert_eq!(
        read_pet("my 20lbs dog"),
        Some(Pet {
            kind: PetKind::Dog,
            weight_lb: Some(20)
        })
    );
    assert_eq!(read_pet("two cats").map(|p| p.kind), Some(PetKind::Cat));
    assert_eq!(read_pet("2 bedrooms please"), None);
}

#[test]
fn pet_policies_are_read_from_the_catalogs_words() {
    let c = sample();
    let lakeview = PetPolicy::of(&c.buildings[0]);
    assert_eq!(
        lakeview,
        PetPolicy {
            cats: true,
            dogs: true,
            dog_max_lb: Some(40),
            pet_rent: Some(35)
        }
    );
    assert!(!PetPolicy::of(&c.buildings[1]).any());
    let riverside = PetPolicy::of(&c.buildings[2]);
    assert!(riverside.cats && !riverside.dogs);
    let lab = read_pet("60 lb lab").unwrap();
    assert_eq!(lakeview.fits(&lab), Some(false));
    assert_eq!(lakeview.fits(&read_pet("20 lb dog").unwrap()), Some(true));
}

#[test]
fn the_issues_two_conversations_get_the_catalogs_answers() {
    let c = sample();
    let needs = Needs {
        bedrooms: Some(2),
        ..Needs::default()
    };
    assert_eq!(
        read_asks("Hi, is the 2BR still available?"),
        vec![Ask::Units]
    );
    assert_eq!(
        answer(&c, &needs, Ask::Units, &[], "").unwrap(),
        "Maple Court has a 2BR at $1,600/mo (available now). Lakeview Lofts has a 2BR at $1,900/mo (available Jan 1)."
    );
    let text = "Do you allow dogs? I have a 60 lb lab";
    assert_eq!(read_asks(text), vec![Ask::Pets]);
    let needs = Needs {
        pet: read_pet(text),
        ..Needs::default()
    };
    assert_eq!(
        answer(&c, &needs, Ask::Pets, &[], text).unwrap(),
        "Lakeview Lofts takes cats and dogs under 40 lb ($35/mo pet rent), so a 60 lb dog would not fit there, and our other buildings don't take one."
    );
    let cat = Needs {
        pet: read_pet("a cat"),
        ..Needs::default()
    };
    let said = answer(&c, &cat, Ask::Pets, &[], "").unwrap();
    assert!(
        said.ends_with("so Lakeview Lofts and Riverside Flats can take a cat."),
        "{said}"
    );
}

#[test]
fn matches_follow_every_need_and_say_what_comes_closest() {
    let c = sample();
    let voucher_1br = Needs {
        bedrooms: Some(1),
        voucher: Some(true),
        ..Needs::default()
    };
    assert_eq!(
        describe_matches(&c, &voucher_1br).unwrap(),
        "Lakeview Lofts has a 1BR at $1,450/mo (available now)."
    );
    let cheap = Needs {
        bedrooms: Some(2),
        budget: Some(1200),
        ..Needs::default()
    };
    assert_eq!(
        describe_matches(&c, &cheap).unwrap(),
        "Nothing for a 2BR within $1,200/mo right now; the closest is a 2BR at Maple Court ($1,600/mo)."
    );
    let four = Needs {
        bedrooms: Some(4),
        ..Needs::default()
    };
    assert!(
        describe_matches(&c, &four)
            .unwrap()
            .starts_with("We don't have a 4BR")
    );
    assert_eq!(describe_matches(&c, &Needs::default()), None);
}

#[test]
fn what_the_catalog_does_not_list_is_not_answered() {
    let c = sample();
    let maple = vec![&c.buildings[1]];
    assert_eq!(
        answer(
            &c,
            &Needs::default(),
            Ask::Amenities,
            &maple,
            "is there a gym?"
        ),
        None
    );
    assert!(
        answer(&c, &Needs::default(), Ask::Amenities, &maple, "laundry?")
            .unwrap()
            .contains("laundry on site")
    );
    assert!(read_asks("Is there parking at Maple Court?").is_empty());
    assert!(read_asks("what's the application fee?").is_empty());
    assert!(read_asks("how much is the security deposit?").is_empty());
    assert!(read_asks("do you have units for people with disabilities?").is_empty());
    let riverside = vec![&c.buildings[2]];
    let shepherd = Needs {
        pet: read_pet("my german shepherd"),
        ..Needs::default()
    };
    assert_eq!(
        answer(
            &c,
            &shepherd,
            Ask::Pets,
            &riverside,
            "my shepherd at Riverside Flats?"
        )
        .unwrap(),
        "Riverside Flats takes cats only, so a dog would not fit there."
    );
    assert_eq!(
        answer(
            &c,
            &Needs::default(),
            Ask::Units,
            &[],
            "anything available?"
        )
        .unwrap(),
        "We have studios to 3BRs from $1,250/mo at Lakeview Lofts, Maple Court and Riverside Flats."
    );
    assert!(
        read_asks("2 bedrooms please").is_empty(),
        "a statement asks nothing"
    );
    assert_eq!(named_in(&c, "what about maple?").len(), 1);
    assert_eq!(
        answer(&c, &Needs::default(), Ask::TourHours, &maple, "").unwrap(),
        "Tours run: Maple Court Mon-Fri 11am-5pm."
    );
}
