//! `[metrics]`: who may read `GET /metrics`.

use serde::{Deserialize, Serialize};

use super::IpNet;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Client addresses (after `server.trusted_proxies`) answered; others get 403. Empty: none.
    pub allow_from: Vec<IpNet>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            allow_from: ["127.0.0.0/8", "::1"]
                .iter()
                .map(|net| IpNet::parse(net).expect("a loopback network"))
                .collect(),
        }
    }
}
