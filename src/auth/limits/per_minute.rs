//! Counts kept a minute at a time: a refusal recorded at most once a minute, and a fixed
//! window of requests a minute from each address.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use jiff::{SignedDuration, Timestamp};

use super::MAX_TRACKED;

/// The same thing recorded at most once a minute: which refusals of a token were recorded last,
/// and how many like them came since.
#[derive(Default)]
pub struct OncePerMinute {
    seen: Mutex<HashMap<[u8; 16], (Timestamp, u64)>>,
}

impl OncePerMinute {
    /// Whether `user`'s `token` refused for `reason` at `now` is to be recorded: `Some(n)` with
    /// the `n` refusals like it passed over since the last recorded one, or `None` within a
    /// minute of that one. Kept by a 128-bit digest a refusal; at most [`MAX_TRACKED`].
    pub fn first_in_a_while(
        &self,
        user: &str,
        token: &str,
        reason: &str,
        now: Timestamp,
    ) -> Option<u64> {
        let mut hasher = blake3::Hasher::new();
        for part in [user, "\n", token, "\n", reason] {
            hasher.update(part.as_bytes());
        }
        let mut key = [0; 16];
        key.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&key) {
            seen.clear();
        }
        match seen.get_mut(&key) {
            Some((at, passed)) if now.duration_since(*at) < SignedDuration::from_mins(1) => {
                *passed += 1;
                None
            }
            Some(entry) => {
                let passed = entry.1;
                *entry = (now, 0);
                Some(passed)
            }
            None => {
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// At most so many requests a minute from each address (a fixed window a minute long): for an
/// endpoint anyone may call without logging in, such as the leaked-token report.
pub struct PerMinute {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Timestamp, u32)>>,
}

impl PerMinute {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request from `address`; how long it must wait when the minute's are used up.
    pub fn admit(&self, address: Option<IpAddr>, now: Timestamp) -> Result<(), SignedDuration> {
        // Without an address (not over TCP) all such callers share one window.
        let address = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let minute = SignedDuration::from_mins(1);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&address) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let window = windows.entry(address).or_insert((now, 0));
        if now.duration_since(window.0) >= minute {
            *window = (now, 0);
        }
        if window.1 >= self.per_minute {
            return Err(minute - now.duration_since(window.0));
        }
        window.1 += 1;
        Ok(())
    }
}
