//! Where and how to connect: the `AMQP_URL` parser (credentials never reach a message), the
//! endpoint that logs may show, and [`RabbitConfig`].
//!
//! Owns: the URL's corrections and the redacted `Debug`. Must not: connect — `session.rs`
//! does.

use super::*;

/// Parses `amqp://user:pass@host:port/vhost` the way operators (and Celery's kombu) mean it.
/// Errors never contain the URL: it carries a password.
///
/// Three corrections to the parser underneath: an IP address as host is kept (amq-protocol
/// 10.6 replaces it with `localhost`), a lone trailing slash means the default vhost `/` as
/// it does for kombu (not a vhost named ""), and kombu's `pyamqp://` is plain AMQP.
pub fn parse_amqp_url(text: &str) -> Result<AMQPUri, String> {
    let text = text.trim();
    let text = match text.strip_prefix("pyamqp://") {
        Some(rest) => format!("amqp://{rest}"),
        None => text.to_string(),
    };
    let scrub = |e: String| e.replace(&text, "<the URL>");
    let url = url::Url::parse(&text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "amqp" | "amqps") {
        return Err(format!(
            "scheme must be amqp:// or amqps:// (got {}://)",
            url.scheme()
        ));
    }
    let mut uri = AMQPUri::from_str(&text).map_err(scrub)?;
    uri.authority.host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("no host".into()),
    };
    if uri.vhost.is_empty() {
        uri.vhost = "/".into();
    }
    Ok(uri)
}

/// Host, port and vhost with no credentials: what logs and errors may show.
fn endpoint(uri: &AMQPUri) -> String {
    format!(
        "{}:{} (vhost {})",
        uri.authority.host, uri.authority.port, uri.vhost
    )
}

/// Everything [`RabbitQueue`] needs. Not `Debug` by derive: the URI holds the password.
#[derive(Clone)]
pub struct RabbitConfig {
    pub uri: AMQPUri,
    pub names: QueueNames,
    pub delivery_limit: u32,
    /// Shown in the broker's connection list (`rabbitmqctl list_connections
    /// client_properties`), with the role appended: which process holds what.
    pub connection_name: String,
    pub publish_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl RabbitConfig {
    /// Production defaults for `url` (already validated by `config`) and `queue`.
    pub fn new(url: &str, queue: &str, connection_name: &str) -> Result<Self, QueueError> {
        let mut uri = parse_amqp_url(url)
            .map_err(|e| QueueError::Unavailable(format!("AMQP_URL is not usable: {e}")))?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        // lapin's names are AMQP short strings and panic past 255 bytes.
        if queue.is_empty() || queue.len() > MAX_QUEUE_NAME {
            return Err(QueueError::Unavailable(format!(
                "queue name must be 1 to {MAX_QUEUE_NAME} bytes long"
            )));
        }
        Ok(Self {
            uri,
            names: QueueNames::new(queue),
            delivery_limit: DELIVERY_LIMIT,
            connection_name: connection_name.to_string(),
            publish_timeout: PUBLISH_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        })
    }

    pub(super) fn endpoint(&self) -> String {
        endpoint(&self.uri)
    }
}

impl std::fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("endpoint", &self.endpoint())
            .field("names", &self.names)
            .field("delivery_limit", &self.delivery_limit)
            .field("connection_name", &self.connection_name)
            .finish_non_exhaustive()
    }
}
