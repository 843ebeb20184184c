//! A fake building service (the seed's internal building data API, `BUILDING_SERVICE_API`):
//! `GET /buildings` answers the catalog it was given, as JSON (`application/json`) or YAML
//! (`application/yaml`), in the `BUILDINGS_FILE` schema; it counts every request and can be
//! told to fail with a status.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::serve;

struct Served {
    /// (content-type, body).
    catalog: Mutex<(String, String)>,
    failing: Mutex<Option<u16>>,
    requests: Mutex<usize>,
}

#[derive(Clone)]
pub struct FakeBuildings {
    /// The catalog's URL, as `BUILDING_SERVICE_API` takes it.
    pub url: String,
    served: Arc<Served>,
}

impl FakeBuildings {
    /// Serves `json` (a catalog document) as `application/json`.
    pub async fn start(json: &str) -> Self {
        let served = Arc::new(Served {
            catalog: Mutex::new(("application/json".into(), json.to_string())),
            failing: Mutex::new(None),
            requests: Mutex::new(0),
        });
        let app = Router::new()
            .route("/buildings", get(buildings))
            .with_state(served.clone());
        Self {
            url: format!("{}/buildings", serve(app).await),
            served,
        }
    }

    /// Serves `body` with `content_type` from now on.
    pub fn serve_catalog(&self, content_type: &str, body: &str) {
        *self.served.catalog.lock().unwrap() = (content_type.to_string(), body.to_string());
    }

    /// `Some(status)`: answer that status until `fail(None)`.
    pub fn fail(&self, status: Option<u16>) {
        *self.served.failing.lock().unwrap() = status;
    }

    pub fn requests(&self) -> usize {
        *self.served.requests.lock().unwrap()
    }
}

async fn buildings(State(served): State<Arc<Served>>) -> Response {
    *served.requests.lock().unwrap() += 1;
    if let Some(status) = *served.failing.lock().unwrap() {
        return (
            StatusCode::from_u16(status).unwrap(),
            r#"{"error":"unavailable"}"#,
        )
            .into_response();
    }
    let (content_type, body) = served.catalog.lock().unwrap().clone();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
