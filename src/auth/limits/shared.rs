//! The limits where several nodes serve one database: what the database holds of an account's
//! and an address's failures, merged into a node's own, and counted by the same rules.

use std::net::IpAddr;

use jiff::Timestamp;

use super::{
    ACCOUNT_MEMORY, Account, Bucket, Limits, MAX_TRACKED, account_key, drained, one_more_failure,
};

/// An account's failures as the nodes serving one database share them
/// (`store::failures`): read before an attempt begins, counted in the database's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedAccount {
    pub failures: u32,
    pub last: Timestamp,
    pub locked_until: Option<Timestamp>,
}

/// An address's bucket of failures as the nodes share it: its level at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedAddress {
    pub level: f64,
    pub at: Timestamp,
}

impl Limits {
    /// The key an account's failures are kept by, here and in the database.
    pub fn account_key(name: &str) -> [u8; 16] {
        account_key(name)
    }

    /// Takes what the database holds of an account's and an address's failures into what this
    /// node holds (its attempts in flight stay its own). The later account wins: another node's
    /// failures or success since; a read older than this node's own last failure (whose write
    /// may not be committed yet) only adds. An address's bucket is the fuller of the two.
    pub fn merge(
        &self,
        account: Option<([u8; 16], Option<SharedAccount>)>,
        address: Option<(IpAddr, Option<SharedAddress>)>,
        now: Timestamp,
    ) {
        let refill = self.inner.rules.address_refill.0;
        let mut tables = self.inner.tables();
        if let Some((key, Some(shared))) = account {
            let room = tables.accounts.len() < MAX_TRACKED;
            match tables.accounts.get_mut(&key) {
                Some(entry) if shared.last > entry.last => {
                    entry.failures = shared.failures;
                    entry.last = shared.last;
                    entry.locked_until = shared.locked_until;
                }
                Some(entry) => {
                    entry.failures = entry.failures.max(shared.failures);
                    entry.locked_until = entry.locked_until.max(shared.locked_until);
                }
                None if room && shared.failures > 0 => {
                    tables.accounts.insert(
                        key,
                        Account {
                            failures: shared.failures,
                            last: shared.last,
                            locked_until: shared.locked_until,
                            pending: 0,
                        },
                    );
                }
                None => {}
            }
        }
        if let Some((ip, Some(shared))) = address {
            let stored = Bucket {
                level: shared.level,
                at: shared.at,
                passwords: 0,
                tokens: 0,
            };
            let level = drained(&stored, now, refill);
            let room = tables.addresses.len() < MAX_TRACKED;
            match tables.addresses.get_mut(&ip) {
                Some(bucket) if level > drained(bucket, now, refill) => {
                    bucket.level = level;
                    bucket.at = now;
                }
                Some(_) => {}
                None if level > 0.0 && room => {
                    tables.addresses.insert(
                        ip,
                        Bucket {
                            level,
                            at: now,
                            passwords: 0,
                            tokens: 0,
                        },
                    );
                }
                None => {}
            }
        }
    }

    /// Whether this node holds failures of the account with this key.
    pub fn has_failures(&self, key: &[u8; 16]) -> bool {
        self.inner
            .tables()
            .accounts
            .get(key)
            .is_some_and(|a| a.failures > 0)
    }

    /// An account's shared failures after one more, by the same rule as this node's; and the
    /// end of the lock when it locked an account that was not locked.
    pub fn account_failed(
        &self,
        shared: Option<SharedAccount>,
        now: Timestamp,
    ) -> (SharedAccount, Option<Timestamp>) {
        let mut account = match shared {
            // Forgotten a day after the last, once no lock is in force.
            Some(a)
                if a.locked_until.is_some_and(|until| until > now)
                    || now.duration_since(a.last) <= ACCOUNT_MEMORY =>
            {
                a
            }
            _ => SharedAccount {
                failures: 0,
                last: now,
                locked_until: None,
            },
        };
        let locked = one_more_failure(
            &self.inner.rules,
            &mut account.failures,
            &mut account.last,
            &mut account.locked_until,
            now,
        );
        (account, locked)
    }

    /// An address's shared bucket after one more failure.
    pub fn address_failed(&self, shared: Option<SharedAddress>, now: Timestamp) -> SharedAddress {
        let refill = self.inner.rules.address_refill.0;
        let level = shared.map_or(0.0, |s| {
            let bucket = Bucket {
                level: s.level,
                at: s.at,
                passwords: 0,
                tokens: 0,
            };
            drained(&bucket, now, refill)
        });
        SharedAddress {
            level: level + 1.0,
            at: now,
        }
    }
}
