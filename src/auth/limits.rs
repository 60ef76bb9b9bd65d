//! Login throttling: per client address and per account, counting failed attempts only.
//!
//! An address holds a leaky bucket of failures: each failure adds one, one drains every
//! `limits.address_refill`, and at `limits.address_burst` the address must wait. An account
//! locks for `limits.account_lock` after `limits.account_failures` failures in a row, twice as
//! long after each further failure.
//!
//! Attempts in flight count as failures for an address that has failed before, so concurrent
//! guesses cannot slip past its limit; an address with a clean record is not held back by how
//! many attempts it has in flight, so a build farm behind one address can log in in parallel.
//! Its first wave of failures can overshoot the burst by at most the attempts it had in flight.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use jiff::{SignedDuration, Timestamp};

use crate::config::LimitSettings;

/// Entries kept at most per table; beyond, new keys go untracked until old ones drain.
pub const MAX_TRACKED: usize = 100_000;

/// Failures of one account are forgotten this long after the last one.
const ACCOUNT_MEMORY: SignedDuration = SignedDuration::from_hours(24);

/// Unsettled attempts older than this no longer count.
const PENDING_MEMORY: SignedDuration = SignedDuration::from_secs(60);

/// The longest lock is `account_lock` times this.
const MAX_LOCK_FACTOR: i32 = 64;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures, draining one every `address_refill` since `at`.
    level: f64,
    at: Timestamp,
    /// Attempts begun and not yet settled.
    pending: u32,
    /// When the last attempt began; attempts never settled (a dropped request) are forgotten
    /// after `PENDING_MEMORY`.
    begun: Timestamp,
}

impl Bucket {
    fn pending(&self, now: Timestamp) -> u32 {
        if now.duration_since(self.begun) > PENDING_MEMORY {
            0
        } else {
            self.pending
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    last: Timestamp,
    locked_until: Option<Timestamp>,
}

#[derive(Default)]
struct Tables {
    addresses: HashMap<IpAddr, Bucket>,
    accounts: HashMap<String, Account>,
    /// When a full table was last swept, so a flood sweeps at most once a second.
    swept: Option<Timestamp>,
}

impl Tables {
    /// Whether a full table may be swept now.
    fn may_sweep(&mut self, now: Timestamp) -> bool {
        let due = self
            .swept
            .is_none_or(|at| now.duration_since(at) >= SignedDuration::from_secs(1));
        if due {
            self.swept = Some(now);
        }
        due
    }
}

pub struct Limits {
    rules: LimitSettings,
    tables: Mutex<Tables>,
}

/// Why an attempt may not proceed, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: SignedDuration,
}

/// A login attempt that passed the limits: tell it how it ended.
#[must_use]
pub struct Attempt {
    address: Option<IpAddr>,
    account: Option<String>,
}

impl Limits {
    pub fn new(rules: LimitSettings) -> Self {
        Self {
            rules,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks an attempt before any password or database work, reserving its failure.
    pub fn begin(
        &self,
        now: Timestamp,
        address: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Attempt, Throttled> {
        let refill = self.rules.address_refill.0;
        let burst = f64::from(self.rules.address_burst);
        let account = account.map(|a| a.trim().to_lowercase());
        let mut tables = self.tables();

        if let Some(key) = &account
            && let Some(entry) = tables.accounts.get(key)
            && let Some(until) = entry.locked_until
            && until > now
        {
            return Err(Throttled {
                retry_after: until.duration_since(now),
            });
        }
        if let Some(ip) = address {
            let (level, pending) = tables
                .addresses
                .get(&ip)
                .map_or((0.0, 0), |b| (drained(b, now, refill), b.pending(now)));
            let in_flight = if level >= 1.0 {
                f64::from(pending)
            } else {
                0.0
            };
            if level + in_flight + 1.0 > burst {
                let wait = refill.mul_f64((level + in_flight + 1.0 - burst).min(level));
                return Err(Throttled { retry_after: wait });
            }
            if tables.addresses.len() >= MAX_TRACKED
                && !tables.addresses.contains_key(&ip)
                && tables.may_sweep(now)
            {
                tables.addresses.retain(|_, b| in_use(b, now, refill));
            }
            if tables.addresses.len() < MAX_TRACKED || tables.addresses.contains_key(&ip) {
                tables.addresses.insert(
                    ip,
                    Bucket {
                        level,
                        at: now,
                        pending: pending + 1,
                        begun: now,
                    },
                );
            }
        }
        Ok(Attempt { address, account })
    }

    /// A successful login: the account starts afresh.
    pub fn succeeded(&self, attempt: Attempt, now: Timestamp) {
        let mut tables = self.tables();
        self.settle_address(&mut tables, attempt.address, now, 0.0);
        if let Some(key) = &attempt.account {
            tables.accounts.remove(key);
        }
    }

    /// A failed login: the address and the account count one more failure.
    pub fn failed(&self, attempt: Attempt, now: Timestamp) {
        let mut tables = self.tables();
        self.settle_address(&mut tables, attempt.address, now, 1.0);
        let Some(key) = attempt.account else {
            return;
        };
        let limit = self.rules.account_failures;
        let lock = self.rules.account_lock.0;
        if tables.accounts.len() >= MAX_TRACKED && !tables.accounts.contains_key(&key) {
            if tables.may_sweep(now) {
                tables.accounts.retain(|_, a| !forgotten(a, now));
            }
            if tables.accounts.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = tables.accounts.entry(key).or_insert(Account {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if forgotten(entry, now) {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last = now;
        if entry.failures >= limit {
            let doublings = (entry.failures - limit).min(6);
            let factor = (1_i32 << doublings).min(MAX_LOCK_FACTOR);
            entry.locked_until = Some(now + lock * factor);
        }
    }

    fn settle_address(
        &self,
        tables: &mut Tables,
        address: Option<IpAddr>,
        now: Timestamp,
        failures: f64,
    ) {
        if let Some(ip) = address
            && let Some(bucket) = tables.addresses.get_mut(&ip)
        {
            bucket.level = drained(bucket, now, self.rules.address_refill.0) + failures;
            bucket.at = now;
            bucket.pending = bucket.pending(now).saturating_sub(1);
        }
    }

    /// How many addresses and accounts are tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.tables();
        (tables.addresses.len(), tables.accounts.len())
    }

    /// Drops entries that no longer hold anything back.
    pub fn prune(&self, now: Timestamp) {
        let refill = self.rules.address_refill.0;
        let mut tables = self.tables();
        tables.addresses.retain(|_, b| in_use(b, now, refill));
        tables.accounts.retain(|_, a| !forgotten(a, now));
    }
}

/// Whether a bucket still holds a failure or an attempt in flight.
fn in_use(bucket: &Bucket, now: Timestamp, refill: SignedDuration) -> bool {
    drained(bucket, now, refill) > 0.0 || bucket.pending(now) > 0
}

/// The bucket's level at `now`, one failure draining every `refill`.
fn drained(bucket: &Bucket, now: Timestamp, refill: SignedDuration) -> f64 {
    let elapsed = now.duration_since(bucket.at).as_secs_f64().max(0.0);
    (bucket.level - elapsed / refill.as_secs_f64()).max(0.0)
}

fn forgotten(account: &Account, now: Timestamp) -> bool {
    account.locked_until.is_none_or(|until| until <= now)
        && now.duration_since(account.last) > ACCOUNT_MEMORY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration;

    fn limits() -> Limits {
        Limits::new(LimitSettings::default())
    }

    #[test]
    fn an_address_is_held_back_after_its_burst_of_failures_and_drains() {
        let limits = limits();
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..30 {
            let attempt = limits.begin(now, Some(ip), None).unwrap();
            limits.failed(attempt, now);
        }
        let refused = limits.begin(now, Some(ip), None).err().unwrap();
        assert_eq!(refused.retry_after, SignedDuration::from_secs(2));
        let later = now + SignedDuration::from_secs(2);
        let attempt = limits.begin(later, Some(ip), None).unwrap();
        limits.succeeded(attempt, later);
        assert!(
            limits.begin(later, Some(ip), None).is_ok(),
            "a success gives its slot back"
        );
    }

    #[test]
    fn attempts_in_flight_count_only_where_failures_were_seen() {
        let limits = limits();
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let clean: IpAddr = "192.0.2.3".parse().unwrap();
        let in_flight: Vec<_> = (0..100)
            .map(|_| limits.begin(now, Some(clean), None).unwrap())
            .collect();
        for attempt in in_flight {
            limits.succeeded(attempt, now);
        }

        let guessing: IpAddr = "192.0.2.4".parse().unwrap();
        let attempt = limits.begin(now, Some(guessing), None).unwrap();
        limits.failed(attempt, now);
        let admitted = (0..100)
            .map_while(|_| limits.begin(now, Some(guessing), None).ok())
            .count();
        assert_eq!(
            admitted, 29,
            "one failure and 29 in flight fill the burst of 30"
        );
    }

    #[test]
    fn successes_never_count() {
        let limits = limits();
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..1000 {
            let attempt = limits.begin(now, Some(ip), Some("alice")).unwrap();
            limits.succeeded(attempt, now);
        }
        assert_eq!(limits.tracked().1, 0);
    }

    #[test]
    fn an_account_locks_after_its_failures_for_longer_each_time() {
        let limits = Limits::new(LimitSettings {
            account_lock: Duration(SignedDuration::from_mins(5)),
            ..LimitSettings::default()
        });
        let mut now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        for _ in 0..10 {
            let attempt = limits.begin(now, None, Some("Bob")).unwrap();
            limits.failed(attempt, now);
        }
        let locked = limits.begin(now, None, Some("bob")).err().unwrap();
        assert_eq!(locked.retry_after, SignedDuration::from_mins(5));
        now += SignedDuration::from_mins(5);
        let attempt = limits.begin(now, None, Some("bob")).unwrap();
        limits.failed(attempt, now);
        let locked = limits.begin(now, None, Some("bob")).err().unwrap();
        assert_eq!(locked.retry_after, SignedDuration::from_mins(10));
    }
}
