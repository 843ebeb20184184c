//! One connection and its channel, per role: opened with the topology declared, within the
//! connect timeout.
//!
//! Owns: the connection's options (heartbeat, name) and the role's channel. Must not: keep
//! a session up — each link (`publish.rs`, `consume.rs`) replaces its own when it drops.

use super::*;

/// One connection and the channel a role uses on it. Dropping the last `Arc` closes the
/// connection, so a delivery in flight keeps its session (and its channel) alive until it
/// is settled.
pub(super) struct Session {
    pub(super) connection: Connection,
    pub(super) channel: Channel,
}

impl Session {
    pub(super) fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Connects, opens a channel and declares the topology, all within `connect_timeout`.
pub(super) async fn open_session(
    config: &RabbitConfig,
    role: &str,
) -> Result<Session, RabbitError> {
    let endpoint = config.endpoint();
    let amqp = |source| RabbitError::Amqp {
        endpoint: endpoint.clone(),
        source,
    };
    let work = async {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("{} {role}", config.connection_name).into());
        let connection = Connection::connect_uri(config.uri.clone(), props)
            .await
            .map_err(amqp)?;
        let channel = connection.create_channel().await.map_err(amqp)?;
        declare_topology(&channel, &config.names, config.delivery_limit)
            .await
            .map_err(amqp)?;
        Ok(Session {
            connection,
            channel,
        })
    };
    tokio::time::timeout(config.connect_timeout, work)
        .await
        .map_err(|_| RabbitError::ConnectTimeout {
            endpoint: endpoint.clone(),
            timeout: config.connect_timeout,
        })?
}
