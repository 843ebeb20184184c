//! What the catalog answers, as SMS sentences, for a brain that has no model: the rules
//! responder asks here for availability and rent by bedroom count (naming the building),
//! each building's pet policy (weight limit, pet rent) against the lead's pet, amenities,
//! tour hours and the address, and for the buildings that match what the lead has said.
//!
//! Owns: reading a pet out of a lead's words ("a 60 lb lab"), reading a building's pet
//! policy out of the catalog's words, which buildings fit a lead's needs, which of these
//! questions a message asks, and every sentence built from catalog facts.
//! Must not: say anything the catalog does not: a question it has no fact for gets `None`,
//! and the caller holds it for the team. No I/O, no clock.
//!
//! Layout: `pets` reads the lead's pet and a building's policy; this file answers.

use super::catalog::{Building, Catalog, Unit};

mod pets;
pub use pets::{Pet, PetKind, PetPolicy, read_pet};

/// What a lead has told us, as far as matching goes. Unknown needs do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub bedrooms: Option<u8>,
    pub budget: Option<u32>,
    /// `Some(true)`: uses a housing voucher.
    pub voucher: Option<bool>,
    pub pet: Option<Pet>,
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '$')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// "studio" or "2BR".
pub fn unit_label(bedrooms: u8) -> String {
    if bedrooms == 0 {
        "studio".into()
    } else {
        format!("{bedrooms}BR")
    }
}

pub fn dollars(amount: u32) -> String {
    let digits = amount.to_string();
    let mut out = String::from("$");
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "available now", "available Dec 15" (an ISO date), or the catalog's words.
fn availability(u: &Unit) -> Option<String> {
    let a = u.available.as_deref()?.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(a, "%Y-%m-%d") {
        return Some(format!("available {}", d.format("%b %-d")));
    }
    Some(format!("available {a}"))
}

fn unit_phrase(u: &Unit) -> String {
    let mut s = format!("a {} at {}/mo", unit_label(u.bedrooms), dollars(u.rent));
    if let Some(a) = availability(u) {
        s.push_str(&format!(" ({a})"));
    }
    s
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "Maple Court has a 2BR at $1,600/mo (available now)."
fn building_units(b: &Building, units: &[&Unit]) -> String {
    let phrases: Vec<String> = units.iter().map(|u| unit_phrase(u)).collect();
    format!("{} has {}.", b.name, join_and(&phrases))
}

/// The buildings a message or a line names: the full name, or its first word when that
/// word is the name's own ("Lakeview", "Maple", "Riverside").
pub fn named_in<'a>(catalog: &'a Catalog, text: &str) -> Vec<&'a Building> {
    let lower = format!(" {} ", words(text).join(" "));
    catalog
        .buildings
        .iter()
        .filter(|b| {
            let name = words(&b.name);
            let full = format!(" {} ", name.join(" "));
            lower.contains(&full)
                || name
                    .first()
                    .is_some_and(|first| first.len() >= 5 && lower.contains(&format!(" {first} ")))
        })
        .collect()
}

/// Sooner first (available now, then by date; words last), then cheaper: the order a lead
/// is shown units and buildings in.
fn unit_order(u: &Unit) -> (u8, chrono::NaiveDate, u32) {
    let a = u.available.as_deref().map(str::trim).unwrap_or("");
    match chrono::NaiveDate::parse_from_str(a, "%Y-%m-%d") {
        _ if a.eq_ignore_ascii_case("now") => (0, chrono::NaiveDate::MIN, u.rent),
        Ok(d) => (1, d, u.rent),
        Err(_) => (2, chrono::NaiveDate::MAX, u.rent),
    }
}

/// Orders buildings by their best fitting unit ([`unit_order`]).
/// The first three buildings found, each with its units, as sentences.
fn first_buildings(found: &[(&Building, Vec<&Unit>)]) -> String {
    let lines: Vec<String> = found
        .iter()
        .take(3)
        .map(|(b, units)| building_units(b, units))
        .collect();
    lines.join(" ")
}

fn sort_by_units(found: &mut [(&Building, Vec<&Unit>)]) {
    found.sort_by_key(|(_, units)| units.iter().map(|u| unit_order(u)).min());
}

/// Units of `b` fitting the bedroom count and budget.
fn units_fitting<'a>(b: &'a Building, needs: &Needs) -> Vec<&'a Unit> {
    b.units
        .iter()
        .filter(|u| needs.bedrooms.is_none_or(|n| u.bedrooms == n))
        .filter(|u| needs.budget.is_none_or(|max| u.rent <= max))
        .collect()
}

/// The buildings (with their fitting units) that fit every need known.
pub fn matches<'a>(catalog: &'a Catalog, needs: &Needs) -> Vec<(&'a Building, Vec<&'a Unit>)> {
    let mut found: Vec<_> = catalog
        .buildings
        .iter()
        .filter(|b| needs.voucher != Some(true) || b.accepts_vouchers)
        .filter(|b| {
            needs
                .pet
                .is_none_or(|p| PetPolicy::of(b).fits(&p) != Some(false))
        })
        .map(|b| (b, units_fitting(b, needs)))
        .filter(|(_, units)| !units.is_empty())
        .collect();
    sort_by_units(&mut found);
    found
}

/// The matches as one or two sentences; when nothing fits, what comes closest and why
/// (over budget, or the pet). `None` when the needs say nothing to match on yet.
pub fn describe_matches(catalog: &Catalog, needs: &Needs) -> Option<String> {
    if needs.bedrooms.is_none() && needs.budget.is_none() {
        return None;
    }
    let found = matches(catalog, needs);
    if !found.is_empty() {
        return Some(first_buildings(&found));
    }
    // Nothing fits: the nearest the catalog has, said as it is.
    let label = needs.bedrooms.map(unit_label);
    let without_budget = Needs {
        budget: None,
        ..needs.clone()
    };
    let over = matches(catalog, &without_budget);
    let cheapest = over
        .iter()
        .flat_map(|(b, units)| units.iter().map(move |u| (*b, *u)))
        .min_by_key(|(_, u)| u.rent);
    if let (Some(budget), Some((b, cheapest))) = (needs.budget, cheapest) {
        return Some(format!(
            "Nothing{} within {}/mo right now; the closest is a {} at {} ({}/mo).",
            label.map(|l| format!(" for a {l}")).unwrap_or_default(),
            dollars(budget),
            unit_label(cheapest.bedrooms),
            b.name,
            dollars(cheapest.rent)
        ));
    }
    if let Some(n) = needs.bedrooms
        && !catalog
            .buildings
            .iter()
            .any(|b| b.units.iter().any(|u| u.bedrooms == n))
    {
        let largest = catalog
            .buildings
            .iter()
            .flat_map(|b| b.units.iter().map(move |u| (b, u)))
            .max_by_key(|(_, u)| u.bedrooms)?;
        return Some(format!(
            "We don't have a {} right now; the largest is a {} at {} ({}/mo).",
            unit_label(n),
            unit_label(largest.1.bedrooms),
            largest.0.name,
            dollars(largest.1.rent)
        ));
    }
    // The unit exists and fits the budget elsewhere: the pet or the voucher rules it out.
    let mut wanted: Vec<String> = needs
        .bedrooms
        .map(|n| format!("a {}", unit_label(n)))
        .into_iter()
        .collect();
    if let Some(b) = needs.budget {
        wanted.push(format!("up to {}/mo", dollars(b)));
    }
    if let Some(p) = needs.pet {
        wanted.push(p.describe());
    }
    if needs.voucher == Some(true) {
        wanted.push("a housing voucher".into());
    }
    Some(format!(
        "Nothing we have fits all of that right now ({}).",
        join_and(&wanted)
    ))
}

/// A question the catalog can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Availability, rent or move-in date of units.
    Units,
    Pets,
    /// A named amenity (the word asked for), or all of them.
    Amenities,
    TourHours,
    Address,
}

const UNIT_WORDS: &[&str] = &[
    "available",
    "availability",
    "availible",
    "open",
    "vacancy",
    "vacancies",
    "price",
    "prices",
    "rent",
    "cost",
    "much",
    "cheapest",
    "cheaper",
    "anything",
    "have",
    "when",
    "ready",
];
const PET_WORDS: &[&str] = &[
    "allow", "allowed", "accept", "take", "ok", "okay", "friendly", "bring", "policy",
];
const AMENITY_WORDS: &[&str] = &[
    "amenities",
    "amenity",
    "laundry",
    "washer",
    "dryer",
    "gym",
    "fitness",
    "doorman",
    "rooftop",
    "roof",
    "deck",
    "bike",
    "heat",
];
const ADDRESS_WORDS: &[&str] = &["address", "where", "located", "location"];
const HOURS_WORDS: &[&str] = &["hours", "hour", "when"];
const TOUR_WORDS: &[&str] = &["tour", "tours", "showing", "showings", "tour?"];

/// Topics the catalog has no field for: a message that names one is the team's to answer
/// whole, so a "how much is the deposit?" is not answered with the rent.
const NOT_CATALOG_WORDS: &[&str] = &[
    "deposit",
    "deposits",
    "fee",
    "fees",
    "application",
    "apply",
    "parking",
    "park",
    "garage",
    "utilities",
    "utility",
    "lease",
    "leases",
    "credit",
    "furnished",
    "sublet",
    "sublease",
    "income",
    "background",
    "smoking",
    "storage",
    "dishwasher",
    "pool",
    // Fair housing: who may live where is a person's to answer (and an accommodation
    // request goes to one), never a list of units.
    "disability",
    "disabilities",
    "disabled",
    "accessible",
    "accessibility",
    "wheelchair",
    "accommodation",
    "accommodations",
    "families",
    "family",
    "kids",
    "children",
    "child",
    "religion",
    "race",
    "neighbors",
    "neighbours",
    "people",
];

/// Which catalog questions `text` asks. A message that is not a question (no "?" and no
/// question word first) asks none.
pub fn read_asks(text: &str) -> Vec<Ask> {
    let w = words(text);
    let first = w.first().map(String::as_str).unwrap_or("");
    let questioning = text.contains('?')
        || matches!(
            first,
            "is" | "are"
                | "do"
                | "does"
                | "can"
                | "what"
                | "whats"
                | "how"
                | "any"
                | "when"
                | "where"
                | "which"
                | "will"
        );
    if !questioning {
        return Vec::new();
    }
    let has = |list: &[&str]| w.iter().any(|x| list.contains(&x.as_str()));
    if has(NOT_CATALOG_WORDS) {
        return Vec::new();
    }
    let mut asks = Vec::new();
    let tour = has(TOUR_WORDS);
    if tour && has(HOURS_WORDS) {
        asks.push(Ask::TourHours);
    }
    if has(ADDRESS_WORDS) && !tour {
        asks.push(Ask::Address);
    }
    if has(AMENITY_WORDS) {
        asks.push(Ask::Amenities);
    }
    if read_pet(text).is_some() && (has(PET_WORDS) || text.contains('?') || first == "do") {
        asks.push(Ask::Pets);
    }
    if has(UNIT_WORDS) && !tour && !asks.contains(&Ask::Amenities) && !asks.contains(&Ask::Pets) {
        asks.push(Ask::Units);
    }
    asks
}

/// The answer to `ask` from the catalog, about `about` (the buildings the conversation is
/// on; all of them when empty). `asked` is the message, for a named amenity.
pub fn answer(
    catalog: &Catalog,
    needs: &Needs,
    ask: Ask,
    about: &[&Building],
    asked: &str,
) -> Option<String> {
    let scope: Vec<&Building> = if about.is_empty() {
        catalog.buildings.iter().collect()
    } else {
        about.to_vec()
    };
    match ask {
        Ask::Units => units_answer(catalog, needs, &scope, !about.is_empty()),
        // Pets: every building's policy unless the lead named some (a building we
        // mentioned before is no reason to hide where their pet fits).
        Ask::Pets => Some(match named_now(about, asked) {
            true => pets_answer(&scope, needs.pet, true),
            false => pets_answer(
                &catalog.buildings.iter().collect::<Vec<_>>(),
                needs.pet,
                false,
            ),
        }),
        Ask::Amenities => amenities_answer(&scope, asked),
        Ask::TourHours => {
            let parts: Vec<String> = scope
                .iter()
                .filter_map(|b| Some(format!("{} {}", b.name, b.tour_hours.as_deref()?)))
                .collect();
            (!parts.is_empty()).then(|| format!("Tours run: {}.", parts.join("; ")))
        }
        Ask::Address => {
            let parts: Vec<String> = scope
                .iter()
                .take(3)
                .map(|b| match &b.neighborhood {
                    Some(n) => format!("{} is at {} ({n})", b.name, b.address),
                    None => format!("{} is at {}", b.name, b.address),
                })
                .collect();
            Some(format!("{}.", parts.join("; ")))
        }
    }
}

/// True when `asked` itself names one of `about`.
fn named_now(about: &[&Building], asked: &str) -> bool {
    let catalog = Catalog {
        buildings: about.iter().map(|b| (*b).clone()).collect(),
    };
    !about.is_empty() && !named_in(&catalog, asked).is_empty()
}

fn units_answer(
    catalog: &Catalog,
    needs: &Needs,
    scope: &[&Building],
    named: bool,
) -> Option<String> {
    // A question about units is answered with what there is: the budget does not hide a
    // rent they asked for, nor the pet or voucher a building they asked about by name.
    let by_rooms = Needs {
        budget: None,
        voucher: if named { None } else { needs.voucher },
        pet: if named { None } else { needs.pet },
        ..needs.clone()
    };
    let mut found: Vec<(&Building, Vec<&Unit>)> = scope
        .iter()
        .copied()
        .filter(|b| by_rooms.voucher != Some(true) || b.accepts_vouchers)
        .filter(|b| {
            by_rooms
                .pet
                .is_none_or(|p| PetPolicy::of(b).fits(&p) != Some(false))
        })
        .map(|b| (b, units_fitting(b, &by_rooms)))
        .filter(|(_, units)| !units.is_empty())
        .collect();
    sort_by_units(&mut found);
    if needs.bedrooms.is_none() && found.len() > 1 {
        return Some(summary(&found));
    }
    if !found.is_empty() {
        return Some(first_buildings(&found));
    }
    describe_matches(catalog, needs)
}

/// "We have studios to 3BRs from $1,250/mo at Lakeview Lofts, Maple Court and Riverside
/// Flats." — for a lead who has not said how many bedrooms.
fn summary(found: &[(&Building, Vec<&Unit>)]) -> String {
    let units = || found.iter().flat_map(|(_, us)| us.iter());
    let (Some(min_rooms), Some(max_rooms), Some(min_rent)) = (
        units().map(|u| u.bedrooms).min(),
        units().map(|u| u.bedrooms).max(),
        units().map(|u| u.rent).min(),
    ) else {
        return String::new();
    };
    let plural = |n: u8| {
        if n == 0 {
            "studios".to_string()
        } else {
            format!("{n}BRs")
        }
    };
    let range = if min_rooms == max_rooms {
        plural(min_rooms)
    } else {
        format!("{} to {}", plural(min_rooms), plural(max_rooms))
    };
    let names: Vec<String> = found.iter().map(|(b, _)| b.name.clone()).collect();
    format!(
        "We have {range} from {}/mo at {}.",
        dollars(min_rent),
        join_and(&names)
    )
}

fn pet_policy_words(b: &Building) -> String {
    let p = PetPolicy::of(b);
    if !p.any() {
        return format!("{} does not allow pets", b.name);
    }
    let kinds = match (p.cats, p.dogs, p.dog_max_lb) {
        (true, true, Some(max)) => format!("cats and dogs under {max} lb"),
        (true, true, None) => "cats and dogs".to_string(),
        (true, false, _) => "cats only".to_string(),
        (false, true, Some(max)) => format!("dogs under {max} lb"),
        (false, true, None) => "dogs".to_string(),
        (false, false, _) => unreachable!("any() is true"),
    };
    match p.pet_rent {
        Some(rent) => format!("{} takes {kinds} ({}/mo pet rent)", b.name, dollars(rent)),
        None => format!("{} takes {kinds}", b.name),
    }
}

/// Each building's policy; with the lead's pet, what fits it and why the others do not.
/// `named`: the lead asked about these buildings only.
fn pets_answer(scope: &[&Building], pet: Option<Pet>, named: bool) -> String {
    let Some(pet) = pet.filter(|p| p.kind != PetKind::Other) else {
        let parts: Vec<String> = scope.iter().map(|b| pet_policy_words(b)).collect();
        return format!("{}.", parts.join("; "));
    };
    let fit: Vec<&Building> = scope
        .iter()
        .copied()
        .filter(|b| PetPolicy::of(b).fits(&pet) == Some(true))
        .collect();
    let mut parts: Vec<String> = scope
        .iter()
        .filter(|b| {
            let p = PetPolicy::of(b);
            // The policy worth saying: one that names this kind of pet.
            (pet.kind == PetKind::Dog && p.dogs) || (pet.kind == PetKind::Cat && p.cats)
        })
        .map(|b| pet_policy_words(b))
        .collect();
    let said = pet.describe();
    if fit.is_empty() && named {
        let policies: Vec<String> = scope.iter().map(|b| pet_policy_words(b)).collect();
        return format!("{}, so {said} would not fit there.", policies.join("; "));
    }
    if fit.is_empty() {
        if parts.is_empty() {
            return format!("Sorry - none of our buildings take {said}.");
        }
        parts.push(format!(
            "so {said} would not fit there, and our other buildings don't take one"
        ));
        return format!("{}.", parts.join(", "));
    }
    let names: Vec<String> = fit.iter().map(|b| b.name.clone()).collect();
    format!(
        "{} - so {} can take {said}.",
        parts.join("; "),
        join_and(&names)
    )
}

fn amenities_answer(scope: &[&Building], asked: &str) -> Option<String> {
    let w = words(asked);
    let specific: Vec<&str> = w
        .iter()
        .map(String::as_str)
        .filter(|x| AMENITY_WORDS.contains(x) && !x.starts_with("amenit"))
        .collect();
    let mut parts = Vec::new();
    for b in scope.iter().take(3) {
        if b.amenities.is_empty() {
            continue;
        }
        if !specific.is_empty() {
            let listed = b.amenities.iter().any(|a| {
                let a = a.to_lowercase();
                specific.iter().any(|s| a.contains(s))
            });
            // Not listed is not "no": the team answers that.
            if !listed {
                return None;
            }
        }
        parts.push(format!("{} has {}", b.name, join_and(&b.amenities)));
    }
    (!parts.is_empty()).then(|| format!("{}.", parts.join("; ")))
}

#[cfg(test)]
mod tests;
