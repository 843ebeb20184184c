//! Loading the brain's building catalog (`BUILDINGS_FILE`): YAML or JSON by extension,
//! validated, with the bundled sample (`deploy/buildings.sample.yaml`, compiled in) when
//! the variable is unset; and parsing what the building service serves (`parse_served`,
//! the same schema, the format by content-type; fetched by `crate::building_service`).
//!
//! Owns: file reading, format choice and error messages that name the file. Must not: hold
//! catalog logic (matching, prompt rendering: `actors::brain::catalog`).

use actors::brain::catalog::Catalog;
use anyhow::Context;

/// The sample shipped with the service, used when `BUILDINGS_FILE` is unset.
pub const SAMPLE: &str = include_str!("../deploy/buildings.sample.yaml");

enum Format {
    Yaml,
    Json,
}

fn format_of(path: &str) -> Option<Format> {
    let lower = path.to_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        Some(Format::Yaml)
    } else if lower.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

pub fn has_known_extension(path: &str) -> bool {
    format_of(path).is_some()
}

fn parse(text: &str, format: Format) -> anyhow::Result<Catalog> {
    let catalog: Catalog = match format {
        Format::Yaml => serde_yaml_ng::from_str(text)?,
        Format::Json => serde_json::from_str(text)?,
    };
    catalog.validate()?;
    Ok(catalog)
}

/// A catalog the building service answered: YAML when its content-type says so (`yaml`
/// anywhere in it: `application/yaml`, `application/x-yaml`, `text/yaml`), JSON otherwise.
pub fn parse_served(text: &str, content_type: Option<&str>) -> anyhow::Result<Catalog> {
    let format = match content_type {
        Some(ct) if ct.to_ascii_lowercase().contains("yaml") => Format::Yaml,
        _ => Format::Json,
    };
    parse(text, format)
}

/// The catalog at `path`, or the bundled sample when `None`.
pub fn load(path: Option<&str>) -> anyhow::Result<Catalog> {
    let Some(path) = path else {
        return parse(SAMPLE, Format::Yaml).context("the bundled sample catalog is invalid");
    };
    let format = format_of(path)
        .with_context(|| format!("BUILDINGS_FILE={path:?} must end in .yaml, .yml or .json"))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("BUILDINGS_FILE={path:?} cannot be read"))?;
    parse(&text, format).with_context(|| format!("BUILDINGS_FILE={path:?} is not a valid catalog"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_sample_loads() {
        let c = load(None).unwrap();
        assert!(c.buildings.len() >= 3);
        assert!(c.find("lakeview-lofts").is_some());
    }

    #[test]
    fn json_and_yaml_load_and_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let json_path = dir.path().join("b.json");
        std::fs::write(
            &json_path,
            r#"{"buildings":[{"id":"a","name":"A","address":"1 St","units":[{"bedrooms":1,"rent":900}]}]}"#,
        )
        .unwrap();
        let c = load(Some(json_path.to_str().unwrap())).unwrap();
        assert_eq!(c.buildings[0].units[0].rent, 900);

        let typo = dir.path().join("b.yaml");
        std::fs::write(
            &typo,
            "buildings:\n  - id: a\n    name: A\n    address: x\n    rnet: 5\n",
        )
        .unwrap();
        let err = format!("{:#}", load(Some(typo.to_str().unwrap())).unwrap_err());
        assert!(
            err.contains("BUILDINGS_FILE") && err.contains("rnet"),
            "{err}"
        );

        let missing = format!("{:#}", load(Some("/nonexistent/b.yaml")).unwrap_err());
        assert!(missing.contains("cannot be read"), "{missing}");
    }

    #[test]
    fn a_served_catalog_is_yaml_by_content_type_and_json_otherwise() {
        let yaml = "buildings:\n  - id: a\n    name: A\n    address: x\n";
        assert_eq!(
            parse_served(yaml, Some("application/x-yaml; charset=utf-8"))
                .unwrap()
                .buildings[0]
                .id,
            "a"
        );
        let json = r#"{"buildings":[{"id":"b","name":"B","address":"y"}]}"#;
        assert_eq!(parse_served(json, None).unwrap().buildings[0].id, "b");
        assert!(parse_served(yaml, Some("application/json")).is_err());
    }
}
