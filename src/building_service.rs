//! The building service (`BUILDING_SERVICE_API`, the seed's internal building data API): the
//! brain's catalog fetched from a URL (the `BUILDINGS_FILE` schema, JSON or YAML by
//! content-type) at start and every `BUILDING_SERVICE_REFRESH_SECS`, into the
//! [`SharedCatalog`] the brain reads.
//!
//! A refresh loop in every worker process rather than a scheduler job: every worker needs
//! the catalog in memory, and the scheduler runs on one leader that could only hand it on
//! through the store; one GET per worker per period is cheap.
//!
//! Owns: the GET, the start-up choice (the service's catalog; if it is down, the file or the
//! sample, alerted), keeping the last good copy on a failed refresh, and the pacing of the
//! failure alert (ERROR `building_service_failed`: the first failure of a streak, then at
//! most every [`ALERT_EVERY`]; `building_service_recovered` when it answers again).
//! Must not: interpret the catalog (`actors::brain::catalog`) or stop the process on a
//! failed refresh.

use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle};
use actors::brain::catalog::{Catalog, SharedCatalog, WeakCatalog};
use anyhow::Context;

/// A failing building service is re-alerted at most this often.
pub const ALERT_EVERY: Duration = Duration::from_secs(600);

pub struct BuildingService {
    http: reqwest::Client,
    url: String,
}

impl BuildingService {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(Duration::from_secs(10))?,
            url: url.to_string(),
        })
    }

    /// One fetch: a 2xx body that parses and validates, or why not.
    pub async fn fetch(&self) -> anyhow::Result<Catalog> {
        let response = self
            .http
            .get(&self.url)
            .header("accept", "application/json, application/yaml;q=0.9")
            .send()
            .await
            .context("building service unreachable")?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("building service answered {status}");
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .context("building service body unreadable")?;
        crate::catalog::parse_served(&text, content_type.as_deref())
            .context("building service served an invalid catalog")
    }
}

/// The catalog to start on: the service's, else (alerted) `fallback` — the file or sample;
/// and whether the service answered.
pub async fn initial_catalog(
    service: &BuildingService,
    fallback: impl FnOnce() -> anyhow::Result<Catalog>,
    alerts: &AlertHandle,
) -> anyhow::Result<(Catalog, bool)> {
    match service.fetch().await {
        Ok(c) => {
            tracing::info!(
                buildings = c.buildings.len(),
                "catalog from the building service"
            );
            Ok((c, true))
        }
        Err(e) => {
            alerts.raise(Alert::error(
                "building_service_failed",
                format!(
                    "The building service is down at start ({e:#}); the brain starts on BUILDINGS_FILE or the bundled sample and retries every refresh."
                ),
            ));
            Ok((fallback()?, false))
        }
    }
}

/// Refreshes `catalog` from `service` every `every` until the brain holding it is gone;
/// `answered_at_start`: false when the start-up fetch failed (and was alerted).
pub fn spawn_refresh(
    service: BuildingService,
    catalog: WeakCatalog,
    every: Duration,
    alerts: AlertHandle,
    answered_at_start: bool,
) {
    tokio::spawn(async move {
        let mut failing = !answered_at_start;
        let mut failing_since_alert: Option<tokio::time::Instant> =
            failing.then(tokio::time::Instant::now);
        loop {
            tokio::time::sleep(every).await;
            let result = service.fetch().await;
            let Some(shared) = catalog.upgrade() else {
                return;
            };
            match result {
                Ok(c) => {
                    if failing {
                        alerts.raise(Alert::event(
                            "building_service_recovered",
                            "The building service answers again; the brain's catalog is current.",
                        ));
                    }
                    failing = false;
                    failing_since_alert = None;
                    replace_logged(&shared, c);
                }
                Err(e) => {
                    failing = true;
                    let due = failing_since_alert.is_none_or(|at| at.elapsed() >= ALERT_EVERY);
                    tracing::warn!(error = %format!("{e:#}"), "building service refresh failed; keeping the last good catalog");
                    if due {
                        alerts.raise(Alert::error(
                            "building_service_failed",
                            format!(
                                "The building service refresh failed ({e:#}); the brain keeps the last good catalog ({} buildings).",
                                shared.current().buildings.len()
                            ),
                        ));
                        failing_since_alert = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
    });
}

fn replace_logged(shared: &SharedCatalog, c: Catalog) {
    if *shared.current() != c {
        tracing::info!(
            buildings = c.buildings.len(),
            "catalog refreshed from the building service"
        );
        shared.replace(c);
    }
}
