//! The guard in front of every state-changing `/ops` request (each POST: verifications,
//! SLA open and resolve, and any added later): the body must be declared JSON, and a
//! browser must be on this very origin. A page elsewhere can make an operator's browser
//! POST a form with the operator's cookie (cross-site request forgery); it cannot send
//! `Content-Type: application/json` without a CORS preflight this server never grants, and
//! the browser names where the request comes from in `Origin` and `Sec-Fetch-Site`.
//!
//! Owns: the rule — a present `Origin` must be this server's own (its host and port are the
//! `Host` the request was sent to; `null` is never), a present `Sec-Fetch-Site` must be
//! `same-origin` or `none` (typed by the user), else 403; then `Content-Type:
//! application/json` (parameters allowed), else 415. A client that sends neither header (a
//! bearer-token script, `verify --record`) passes the origin check. Runs before the
//! handlers, so before authorization: a refused request learns nothing about the token.
//! Then, for a browser's POST (`Sec-Fetch-Site` or the page cookie, no bearer token), the
//! console's CSRF token in `X-CSRF-Token` ([`crate::http::console::csrf`]), else 403: the
//! origin rule already stops another site, the token is the second lock should a browser
//! or a proxy drop the headers it relies on.
//! Must not: judge GETs (they change nothing), or replace authorization
//! ([`super::ops::authorize`] still runs in every handler).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The `axum::middleware::from_fn` layer of the ops router.
pub async fn guard_posts(
    State(state): State<super::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let guarded = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && request.uri().path().starts_with("/ops");
    if guarded && let Err(e) = check(request.headers()) {
        return e.into_response();
    }
    if guarded
        && super::console::csrf::required(request.headers())
        && !super::console::csrf::valid(&state, request.headers())
    {
        return ApiError::Forbidden(
            "this POST needs the console's CSRF token (X-CSRF-Token): reload the page".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The rule on a request's headers.
pub fn check(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_string())
    };
    let host = text(header::HOST).unwrap_or_default();
    if let Some(origin) = text(header::ORIGIN)
        && !same_origin(&origin, &host)
    {
        return Err(ApiError::Forbidden(format!(
            "cross-origin request refused: Origin {origin:?} is not this server ({host})"
        )));
    }
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site.to_ascii_lowercase().as_str(), "same-origin" | "none")
    {
        return Err(ApiError::Forbidden(format!(
            "cross-site request refused (Sec-Fetch-Site: {site})"
        )));
    }
    let json = text(header::CONTENT_TYPE).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "a POST to /ops takes Content-Type: application/json".into(),
        ));
    }
    Ok(())
}

/// `origin` (`scheme://host[:port]`) names the server at `host` (the `Host` header,
/// `host[:port]`): the same host, and the same port, a missing one being the origin
/// scheme's default. The scheme itself is not compared: this listener speaks plain HTTP,
/// a TLS proxy in front of it may not, and no other server can answer on its host and
/// port.
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(origin) = url::Url::parse(origin) else {
        return false; // `null` (a sandboxed or file: page) included
    };
    let (Some(origin_host), Some(origin_port)) =
        (origin.host_str(), origin.port_or_known_default())
    else {
        return false;
    };
    // The Host header through the URL parser, so `[::1]:5013` and case compare as hosts.
    let Ok(target) = url::Url::parse(&format!("{}://{host}", origin.scheme())) else {
        return false;
    };
    target.host_str() == Some(origin_host) && target.port_or_known_default() == Some(origin_port)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const JSON: (&str, &str) = ("content-type", "application/json");
    const HOST: (&str, &str) = ("host", "127.0.0.1:5013");

    #[test]
    fn json_from_a_script_or_this_origin_passes() {
        assert!(check(&headers(&[JSON, HOST])).is_ok());
        assert!(
            check(&headers(&[
                ("content-type", "application/json; charset=utf-8"),
                HOST
            ]))
            .is_ok()
        );
        for origin in ["http://127.0.0.1:5013", "HTTP://127.0.0.1:5013"] {
            assert!(
                check(&headers(&[JSON, HOST, ("origin", origin)])).is_ok(),
                "{origin}"
            );
        }
        for site in ["same-origin", "none"] {
            assert!(check(&headers(&[JSON, HOST, ("sec-fetch-site", site)])).is_ok());
        }
        let h = headers(&[
            JSON,
            ("host", "ops.internal"),
            ("origin", "http://ops.internal"),
        ]);
        assert!(check(&h).is_ok());
    }

    #[test]
    fn another_origin_or_site_is_forbidden() {
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:5012",
            "http://localhost:5013",
            "null",
        ] {
            let err = check(&headers(&[JSON, HOST, ("origin", origin)])).unwrap_err();
            assert!(matches!(err, ApiError::Forbidden(_)), "{origin}: {err:?}");
        }
        for site in ["cross-site", "same-site"] {
            let err = check(&headers(&[JSON, HOST, ("sec-fetch-site", site)])).unwrap_err();
            assert!(matches!(err, ApiError::Forbidden(_)), "{site}");
        }
    }

    #[test]
    fn anything_but_json_is_unsupported() {
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/jsonp",
        ] {
            let err = check(&headers(&[("content-type", ct), HOST])).unwrap_err();
            assert!(matches!(err, ApiError::UnsupportedMediaType(_)), "{ct}");
        }
        let err = check(&headers(&[HOST])).unwrap_err();
        assert!(matches!(err, ApiError::UnsupportedMediaType(_)));
    }
}
