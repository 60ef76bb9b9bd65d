//! `[password]`: what a new password may be.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    /// Whether a new password may arrive as CloudBeaver's client hash (its MD5, 32 hex digits),
    /// as CloudBeaver's web client sends it. Such a password cannot be checked against any rule.
    pub accept_client_hash: bool,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            accept_client_hash: true,
        }
    }
}
