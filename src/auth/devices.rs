//! Device cookies (OWASP's scheme against lockout as a denial of service): a browser that has
//! logged in to an account with its password gets a cookie signed by the server, naming that
//! account. While the account is locked by failed logins, such a browser is not held by the
//! lock: its password checks count in a budget of its own (as many failures as the account's,
//! then a lock of its own), so the people who use the account keep logging in while guesses
//! from elsewhere stay locked out. A cookie that does not verify (forged, expired, another
//! account's) counts for nothing.
//!
//! The cookie holds a random device id, an expiry and a MAC over the account, the id and the
//! expiry (BLAKE3 keyed with a key made once and kept in the database, so restarts keep it).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{Auth, Result};
use crate::store::secrets;

/// The cookie's name.
pub const DEVICE_COOKIE: &str = "lodge-device";
/// How long a browser stays trusted after its last successful password login.
pub const DEVICE_TRUST: SignedDuration = SignedDuration::from_hours(90 * 24);

/// The key's name in `server_secrets`.
const KEY_NAME: &str = "device";

/// The signing key, once loaded.
#[derive(Default)]
pub(super) struct DeviceKey(std::sync::OnceLock<[u8; 32]>);

fn mac(key: &[u8; 32], account: &str, device: &str, expires: i64) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    for part in [account.as_bytes(), b"\n", device.as_bytes(), b"\n"] {
        hasher.update(part);
    }
    hasher.update(expires.to_string().as_bytes());
    hasher.finalize()
}

/// The cookies of browsers trusted for an account, and their key.
pub struct Devices<'a>(pub(super) &'a Auth);

super::facet!(Devices);

impl Devices<'_> {
    /// Reads the devices' signing key, making it on the first start. Until it is loaded (the
    /// command line never loads it) no cookie is issued or trusted.
    pub async fn load_device_key(&self) -> Result<()> {
        // Read first: a write at every start would cost a commit (a few milliseconds).
        let stored = match self.store().read(|tx| secrets::get(tx, KEY_NAME)).await? {
            Some(stored) => stored,
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| {
                    super::Error::Internal(anyhow::anyhow!("the system's random source: {e}"))
                })?;
                self.store()
                    .write(move |tx| secrets::get_or_insert(tx, KEY_NAME, &fresh))
                    .await?
            }
        };
        let key: [u8; 32] = stored.try_into().map_err(|_| {
            super::Error::Internal(anyhow::anyhow!("the stored device key is not 32 bytes"))
        })?;
        let _ = self.device_key.0.set(key);
        Ok(())
    }

    /// A new cookie value trusting this browser for `account` (a normalised user id).
    pub(super) fn device_cookie(&self, account: &str) -> Option<String> {
        let key = self.device_key.0.get()?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).ok()?;
        let device: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let expires = (self.now() + DEVICE_TRUST).as_second();
        let tag = mac(key, account, &device, expires);
        Some(format!("{device}.{expires}.{}", tag.to_hex()))
    }

    /// The device id of `cookie` when it is this server's, for `account`, and not expired.
    pub(super) fn trusted_device(&self, cookie: &str, account: &str) -> Option<Arc<str>> {
        let key = self.device_key.0.get()?;
        let mut parts = cookie.trim().splitn(3, '.');
        let (device, expires, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if device.len() != 32 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        if Timestamp::from_second(expires).ok()? <= self.now() {
            return None;
        }
        let tag = blake3::Hash::from_hex(tag).ok()?;
        // blake3's Hash compares in constant time.
        (tag == mac(key, account, device, expires)).then(|| Arc::from(device))
    }
}

/// The name a device's own budget is kept under in the limits: no user id can hold a NUL.
pub(super) fn budget_name(device: &str) -> String {
    format!("\0device:{device}")
}
