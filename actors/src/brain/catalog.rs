//! The building catalog the brain leases from: what each building offers (units, rents,
//! availability, voucher and pet policy, tour hours) and the facts the system prompt
//! quotes, plus the matching of a lead's requirements against it.
//!
//! Owns: the catalog's data shape (the `BUILDINGS_FILE` schema), its validation, its
//! rendering into the prompt (bounded in size) and requirement matching.
//! Must not: read files (the adapter in `src/` parses YAML or JSON into these types), or
//! invent facts: what is not in the catalog is not in the prompt.

use std::sync::{Arc, RwLock, Weak};

use serde::{Deserialize, Serialize};

use super::context::Requirements;

/// The catalog the brain reads, swappable at runtime (the building service's refresh puts a
/// new one in while turns run): a turn takes the current one once and keeps it for the
/// whole turn, so its prompt and its tools agree. A lock, not `arc-swap`: it is read once
/// per turn and written every few minutes, far from contended.
#[derive(Clone, Debug)]
pub struct SharedCatalog(Arc<RwLock<Arc<Catalog>>>);

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(catalog))))
    }

    /// The catalog now.
    pub fn current(&self) -> Arc<Catalog> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `catalog` in for every later turn.
    pub fn replace(&self, catalog: Catalog) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    /// A handle that does not keep the catalog alive: a refresh loop holds this and ends
    /// when the brain that read the catalog is gone.
    pub fn downgrade(&self) -> WeakCatalog {
        WeakCatalog(Arc::downgrade(&self.0))
    }
}

/// See [`SharedCatalog::downgrade`].
#[derive(Clone, Debug)]
pub struct WeakCatalog(Weak<RwLock<Arc<Catalog>>>);

impl WeakCatalog {
    pub fn upgrade(&self) -> Option<SharedCatalog> {
        self.0.upgrade().map(SharedCatalog)
    }
}

/// The most catalog text put into one system prompt: a big portfolio must not crowd out the
/// conversation or blow the request size.
pub const MAX_CATALOG_PROMPT_CHARS: usize = 8_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub buildings: Vec<Building>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Building {
    /// Stable id the tools use (`schedule_tour.building`).
    pub id: String,
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub neighborhood: Option<String>,
    #[serde(default)]
    pub units: Vec<Unit>,
    /// Housing Choice Vouchers (Section 8 and similar) accepted.
    #[serde(default)]
    pub accepts_vouchers: bool,
    /// The pet policy in words ("cats only", "dogs under 40 lb, $35/month"); `None` = no pets.
    #[serde(default)]
    pub pets: Option<String>,
    #[serde(default)]
    pub amenities: Vec<String>,
    /// When tours can happen, in words ("Mon-Sat 10am-6pm").
    #[serde(default)]
    pub tour_hours: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// 0 = studio.
    pub bedrooms: u8,
    #[serde(default)]
    pub bathrooms: Option<f32>,
    /// Monthly rent in dollars.
    pub rent: u32,
    /// When it can be moved into, in words or as a date ("now", "2026-12-01").
    #[serde(default)]
    pub available: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("building catalog: {0}")]
pub struct CatalogError(pub String);

fn bedrooms_label(n: u8) -> String {
    if n == 0 {
        "studio".into()
    } else {
        format!("{n}BR")
    }
}

impl Catalog {
    /// Checks what serde cannot: at least one building, unique non-empty ids, names present.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.buildings.is_empty() {
            return Err(CatalogError("it lists no buildings".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, b) in self.buildings.iter().enumerate() {
            if b.id.trim().is_empty() || b.name.trim().is_empty() {
                return Err(CatalogError(format!(
                    "building #{} needs a non-empty `id` and `name`",
                    i + 1
                )));
            }
            if !seen.insert(b.id.trim().to_lowercase()) {
                return Err(CatalogError(format!(
                    "building id `{}` appears twice",
                    b.id
                )));
            }
        }
        Ok(())
    }

    /// A building by id, or failing that by name (case-insensitive): models sometimes pass
    /// the name they quoted.
    pub fn find(&self, key: &str) -> Option<&Building> {
        let key = key.trim().to_lowercase();
        self.buildings
            .iter()
            .find(|b| b.id.to_lowercase() == key)
            .or_else(|| self.buildings.iter().find(|b| b.name.to_lowercase() == key))
    }

    /// Buildings with at least one unit fitting every requirement known so far (unknown
    /// requirements do not filter).
    pub fn matching(&self, req: &Requirements) -> Vec<&Building> {
        self.buildings
            .iter()
            .filter(|b| {
                let voucher_ok = !req.has_voucher() || b.accepts_vouchers;
                let pets_ok = !req.has_pets() || b.pets.is_some();
                let unit_ok = b.units.iter().any(|u| {
                    req.bedrooms.is_none_or(|n| u.bedrooms == n)
                        && req.budget.is_none_or(|max| u.rent <= max)
                });
                voucher_ok && pets_ok && unit_ok
            })
            .collect()
    }

    /// The catalog as the prompt shows it: one compact block per building, cut at
    /// [`MAX_CATALOG_PROMPT_CHARS`] with a note that the list goes on.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, b) in self.buildings.iter().enumerate() {
            let block = render_building(b);
            if out.len() + block.len() > MAX_CATALOG_PROMPT_CHARS {
                out.push_str(&format!(
                    "({} more buildings not shown; say you will check with the team)\n",
                    self.buildings.len() - i
                ));
                break;
            }
            out.push_str(&block);
        }
        out
    }
}

fn render_building(b: &Building) -> String {
    let mut s = format!("- [{}] {}, {}", b.id, b.name, b.address);
    if let Some(n) = &b.neighborhood {
        s.push_str(&format!(" ({n})"));
    }
    s.push('\n');
    for u in &b.units {
        s.push_str(&format!(
            "  * {} ${}/mo",
            bedrooms_label(u.bedrooms),
            u.rent
        ));
        if let Some(ba) = u.bathrooms {
            s.push_str(&format!(", {ba} bath"));
        }
        if let Some(a) = &u.available {
            s.push_str(&format!(", available {a}"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "  vouchers: {}; pets: {}",
        if b.accepts_vouchers {
            "accepted"
        } else {
            "not accepted"
        },
        b.pets.as_deref().unwrap_or("not allowed")
    ));
    if let Some(t) = &b.tour_hours {
        s.push_str(&format!("; tours: {t}"));
    }
    s.push('\n');
    if !b.amenities.is_empty() {
        s.push_str(&format!("  amenities: {}\n", b.amenities.join(", ")));
    }
    if let Some(n) = &b.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

#[cfg(test)]
pub(crate) fn sample() -> Catalog {
    Catalog {
        buildings: vec![
            Building {
                id: "lakeview".into(),
                name: "Lakeview Lofts".into(),
                address: "100 W Lake St".into(),
                neighborhood: Some("Loop".into()),
                units: vec![
                    Unit {
                        bedrooms: 1,
                        bathrooms: Some(1.0),
                        rent: 1450,
                        available: Some("now".into()),
                    },
                    Unit {
                        bedrooms: 2,
                        bathrooms: Some(1.0),
                        rent: 1900,
                        available: Some("2027-01-01".into()),
                    },
                ],
                accepts_vouchers: true,
                pets: Some("cats and small dogs".into()),
                amenities: vec!["laundry".into()],
                tour_hours: Some("Mon-Sat 10am-6pm".into()),
                notes: None,
            },
            Building {
                id: "maple".into(),
                name: "Maple Court".into(),
                address: "22 Maple Ave".into(),
                neighborhood: None,
                units: vec![Unit {
                    bedrooms: 2,
                    bathrooms: None,
                    rent: 1600,
                    available: None,
                }],
                accepts_vouchers: false,
                pets: None,
                amenities: vec![],
                tour_hours: None,
                notes: None,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_filter_by_bedrooms_budget_voucher_and_pets() {
        let c = sample();
        let names = |r: &Requirements| -> Vec<String> {
            c.matching(r).iter().map(|b| b.id.clone()).collect()
        };
        assert_eq!(names(&Requirements::default()), vec!["lakeview", "maple"]);
        let two_br = Requirements {
            bedrooms: Some(2),
            budget: Some(1700),
            ..Default::default()
        };
        assert_eq!(names(&two_br), vec!["maple"]);
        let voucher = Requirements {
            bedrooms: Some(2),
            voucher: Some("Section 8".into()),
            ..Default::default()
        };
        assert_eq!(names(&voucher), vec!["lakeview"]);
        let pets_none = Requirements {
            pets: Some("none".into()),
            ..Default::default()
        };
        assert_eq!(names(&pets_none).len(), 2, "\"none\" is not a pet");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = sample();
        c.buildings[1].id = "LAKEVIEW".into();
        assert!(c.validate().unwrap_err().0.contains("twice"));
        assert!(Catalog { buildings: vec![] }.validate().is_err());
        assert!(sample().validate().is_ok());
    }

    #[test]
    fn a_large_catalog_is_cut_in_the_prompt_with_a_note() {
        let mut c = sample();
        let template = c.buildings[0].clone();
        for i in 0..200 {
            let mut b = template.clone();
            b.id = format!("b{i}");
            c.buildings.push(b);
        }
        let text = c.render();
        assert!(text.len() <= MAX_CATALOG_PROMPT_CHARS + 100);
        assert!(text.contains("more buildings not shown"));
    }

    #[test]
    fn find_accepts_the_id_or_the_name() {
        let c = sample();
        assert_eq!(c.find("LAKEVIEW").unwrap().id, "lakeview");
        assert_eq!(c.find("maple court").unwrap().id, "maple");
        assert!(c.find("nowhere").is_none());
    }
}
