//! Login throttling: per client address and per account, counting failed attempts only.
//!
//! An address holds a leaky bucket of failures: each failure adds one, one drains every
//! `limits.address_refill`, and at `limits.address_burst` the address must wait. An account
//! locks for `limits.account_lock` after `limits.account_failures` failures in a row, twice as
//! long after each further failure, never longer than `limits.account_lock_max`.
//!
//! A password check is counted before it starts: an attempt in flight holds a failure's place
//! in its account's and its address's budget until it settles, and a success gives the place
//! back. So however many guesses arrive at once, at most `account_failures` of them are checked
//! against one account and at most `address_burst` from one address. Token checks need no such
//! budget (a token is 256 random bits and costs no hash): their attempts in flight count only
//! for an address that has failed before, so a build farm behind one address can log in with
//! tokens in parallel; its first wave of failures can overshoot the burst by at most the
//! attempts it had in flight.
//!
//! Accounts are kept by a 128-bit digest of their normalised name, so what a flood of names
//! costs is bounded in bytes by the number of entries ([`MAX_TRACKED`]), whatever the names.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use jiff::{SignedDuration, Timestamp};

use crate::config::LimitSettings;

mod per_minute;
mod shared;
pub use per_minute::{OncePerMinute, PerMinute};
pub use shared::{SharedAccount, SharedAddress};

/// Entries kept at most per table; beyond, new keys go untracked until old ones drain.
pub const MAX_TRACKED: usize = 100_000;

/// Failures of one account are forgotten this long after the last one.
const ACCOUNT_MEMORY: SignedDuration = SignedDuration::from_hours(24);

/// What a refused attempt is told to wait when only attempts in flight hold it back: they
/// settle within a hash or two.
const IN_FLIGHT_WAIT: SignedDuration = SignedDuration::from_secs(1);

/// The most doublings of `account_lock`, before `account_lock_max` caps it.
const MAX_DOUBLINGS: u32 = 16;

/// What is checked: a password costs a hash and is guessable; a token costs neither, and
/// neither does a user id no user can have (refused before any lookup), which is checked as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Password,
    Token,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures, draining one every `address_refill` since `at`.
    level: f64,
    at: Timestamp,
    /// Password and token checks begun and not yet settled.
    passwords: u32,
    tokens: u32,
}

/// An account's key: the first 128 bits of the BLAKE3 digest of its lower-cased name.
type AccountKey = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    last: Timestamp,
    locked_until: Option<Timestamp>,
    /// Password checks begun and not yet settled.
    pending: u32,
}

#[derive(Default)]
struct Tables {
    addresses: HashMap<IpAddr, Bucket>,
    accounts: HashMap<AccountKey, Account>,
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

struct Inner {
    rules: LimitSettings,
    tables: Mutex<Tables>,
}

impl Inner {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

/// Why an attempt may not proceed, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: SignedDuration,
    /// Held back by attempts still in flight, not by failures: too many at once.
    pub in_flight: bool,
}

/// An attempt that passed the limits and holds its place in them: tell it how it ended with
/// [`Attempt::succeeded`] or [`Attempt::failed`]. One dropped unsettled (its request gone)
/// gives its place back without counting.
#[must_use]
pub struct Attempt {
    inner: Arc<Inner>,
    check: Check,
    /// The address and account counted here (`None` when not tracked: a table was full).
    address: Option<IpAddr>,
    account: Option<AccountKey>,
    /// The address and account the attempt is for.
    for_address: Option<IpAddr>,
    for_account: Option<AccountKey>,
    settled: bool,
}

/// The address an attempt from `ip` counts under: an IPv4 address written as IPv6 (`::ffff:`) as
/// the IPv4 one, an IPv6 address as its network of `prefix` bits (`limits.ipv6_prefix`), since
/// a client given a /64 may send from any of its addresses.
pub fn address_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix.min(128)))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

fn account_key(name: &str) -> AccountKey {
    let digest = blake3::hash(name.trim().to_lowercase().as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest.as_bytes()[..16]);
    key
}

impl Limits {
    /// [`address_key`] with this server's `limits.ipv6_prefix`.
    pub fn address_key(&self, ip: IpAddr) -> IpAddr {
        address_key(ip, self.inner.rules.ipv6_prefix.0)
    }

    pub fn new(rules: LimitSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules,
                tables: Mutex::new(Tables::default()),
            }),
        }
    }

    /// Checks an attempt before any password or database work, reserving its place. `account`
    /// is the account a password check is for; token checks name none.
    pub fn begin(
        &self,
        now: Timestamp,
        check: Check,
        address: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Attempt, Throttled> {
        let rules = &self.inner.rules;
        let address = address.map(|ip| self.address_key(ip));
        let refill = rules.address_refill.0;
        let burst = f64::from(rules.address_burst);
        let limit = rules.account_failures.max(1);
        let account = account.map(account_key);
        let mut tables = self.inner.tables();

        if let Some(key) = &account
            && let Some(entry) = tables.accounts.get_mut(key)
        {
            if forgotten(entry, now) {
                entry.failures = 0;
            }
            if let Some(until) = entry.locked_until
                && until > now
            {
                return Err(Throttled {
                    retry_after: until.duration_since(now),
                    in_flight: false,
                });
            }
            // After a lock has run out, one more try: its failure locks the account again.
            let budget = limit.saturating_sub(entry.failures).max(1);
            if entry.pending >= budget {
                return Err(Throttled {
                    retry_after: IN_FLIGHT_WAIT,
                    in_flight: true,
                });
            }
        }
        let mut tracked_address = None;
        if let Some(ip) = address {
            let bucket = tables.addresses.get(&ip).copied();
            let level = bucket.map_or(0.0, |b| drained(&b, now, refill));
            let (passwords, tokens) = bucket.map_or((0, 0), |b| (b.passwords, b.tokens));
            let in_flight = match check {
                Check::Password => f64::from(passwords),
                Check::Token if level >= 1.0 => f64::from(passwords + tokens),
                Check::Token => 0.0,
            };
            if level + in_flight + 1.0 > burst {
                let wait = refill.mul_f64((level + in_flight + 1.0 - burst).min(level));
                return Err(Throttled {
                    retry_after: wait.max(IN_FLIGHT_WAIT),
                    in_flight: level + 1.0 <= burst,
                });
            }
            if tables.addresses.len() >= MAX_TRACKED
                && !tables.addresses.contains_key(&ip)
                && tables.may_sweep(now)
            {
                tables.addresses.retain(|_, b| in_use(b, now, refill));
            }
            if tables.addresses.len() < MAX_TRACKED || tables.addresses.contains_key(&ip) {
                let (passwords, tokens) = match check {
                    Check::Password => (passwords + 1, tokens),
                    Check::Token => (passwords, tokens + 1),
                };
                tables.addresses.insert(
                    ip,
                    Bucket {
                        level,
                        at: now,
                        passwords,
                        tokens,
                    },
                );
                tracked_address = Some(ip);
            }
        }
        let mut tracked_account = None;
        if let Some(key) = account {
            if tables.accounts.len() >= MAX_TRACKED
                && !tables.accounts.contains_key(&key)
                && tables.may_sweep(now)
            {
                tables.accounts.retain(|_, a| !forgotten(a, now));
            }
            if tables.accounts.len() < MAX_TRACKED || tables.accounts.contains_key(&key) {
                let entry = tables.accounts.entry(key).or_insert(Account {
                    failures: 0,
                    last: now,
                    locked_until: None,
                    pending: 0,
                });
                entry.pending += 1;
                tracked_account = Some(key);
            }
        }
        Ok(Attempt {
            inner: self.inner.clone(),
            check,
            address: tracked_address,
            account: tracked_account,
            for_address: address,
            for_account: account,
            settled: false,
        })
    }

    /// Whether the account is locked now by its failures.
    pub fn is_locked(&self, account: &str, now: Timestamp) -> bool {
        let tables = self.inner.tables();
        tables
            .accounts
            .get(&account_key(account))
            .and_then(|entry| entry.locked_until)
            .is_some_and(|until| until > now)
    }

    /// When the account's lock in force now was set (at its last failure), if it is locked.
    pub fn locked_since(&self, account: &str, now: Timestamp) -> Option<Timestamp> {
        let tables = self.inner.tables();
        let entry = tables.accounts.get(&account_key(account))?;
        entry
            .locked_until
            .is_some_and(|until| until > now)
            .then_some(entry.last)
    }

    /// Lifts an account's lock and forgets its failures (its password was reset).
    pub fn unlock(&self, account: &str) {
        let mut tables = self.inner.tables();
        if let Some(entry) = tables.accounts.get_mut(&account_key(account)) {
            entry.failures = 0;
            entry.locked_until = None;
        }
    }

    /// How many addresses and accounts are tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.inner.tables();
        (tables.addresses.len(), tables.accounts.len())
    }

    /// Drops entries that no longer hold anything back.
    pub fn prune(&self, now: Timestamp) {
        let refill = self.inner.rules.address_refill.0;
        let mut tables = self.inner.tables();
        tables.addresses.retain(|_, b| in_use(b, now, refill));
        tables.accounts.retain(|_, a| !forgotten(a, now));
    }
}

impl Attempt {
    /// The address and the account's key the attempt is for.
    pub fn for_whom(&self) -> (Option<IpAddr>, Option<[u8; 16]>) {
        (self.for_address, self.for_account)
    }

    /// A success: the account starts afresh and both places are given back.
    pub fn succeeded(mut self, now: Timestamp) {
        self.settle(now, Some(false));
    }

    /// A failure: the address and the account count one more. Gives the end of the account's
    /// lock when this failure locked it (it was not locked before).
    pub fn failed(mut self, now: Timestamp) -> Option<Timestamp> {
        self.settle(now, Some(true))
    }

    /// Gives the attempt's places back; `failed` says how it ended, `None` when it did not
    /// (then `now` is not used). Gives the end of the lock a failure set on an unlocked account.
    fn settle(&mut self, now: Timestamp, failed: Option<bool>) -> Option<Timestamp> {
        self.settled = true;
        let rules = &self.inner.rules;
        let mut tables = self.inner.tables();
        if let Some(ip) = self.address
            && let Some(bucket) = tables.addresses.get_mut(&ip)
        {
            if let Some(failed) = failed {
                bucket.level = drained(bucket, now, rules.address_refill.0) + f64::from(failed);
                bucket.at = now;
            }
            match self.check {
                Check::Password => bucket.passwords = bucket.passwords.saturating_sub(1),
                Check::Token => bucket.tokens = bucket.tokens.saturating_sub(1),
            }
        }
        let key = self.account?;
        let entry = tables.accounts.get_mut(&key)?;
        entry.pending = entry.pending.saturating_sub(1);
        let mut locked = None;
        match failed {
            Some(true) => {
                if forgotten(entry, now) {
                    entry.failures = 0;
                }
                locked = one_more_failure(
                    rules,
                    &mut entry.failures,
                    &mut entry.last,
                    &mut entry.locked_until,
                    now,
                );
            }
            Some(false) => {
                entry.failures = 0;
                entry.locked_until = None;
            }
            None => {}
        }
        if entry.pending == 0 && entry.failures == 0 {
            tables.accounts.remove(&key);
        }
        locked
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Timestamp::UNIX_EPOCH, None);
        }
    }
}

/// Counts one more failure of an account: its failures in a row, the last one's time and its
/// lock, as `limits.account_*` say. Gives the end of the lock when this failure locked an
/// account that was not locked.
fn one_more_failure(
    rules: &LimitSettings,
    failures: &mut u32,
    last: &mut Timestamp,
    locked_until: &mut Option<Timestamp>,
    now: Timestamp,
) -> Option<Timestamp> {
    *failures += 1;
    *last = now;
    let limit = rules.account_failures.max(1);
    if *failures < limit {
        return None;
    }
    let doublings = (*failures - limit).min(MAX_DOUBLINGS);
    let lock = (rules.account_lock.0 * (1_i32 << doublings)).min(rules.account_lock_max.0);
    let newly = locked_until.is_none_or(|until| until <= now);
    *locked_until = Some(now + lock);
    newly.then_some(now + lock)
}

/// Whether a bucket still holds a failure or an attempt in flight.
fn in_use(bucket: &Bucket, now: Timestamp, refill: SignedDuration) -> bool {
    drained(bucket, now, refill) > 0.0 || bucket.passwords + bucket.tokens > 0
}

/// The bucket's level at `now`, one failure draining every `refill`.
fn drained(bucket: &Bucket, now: Timestamp, refill: SignedDuration) -> f64 {
    let elapsed = now.duration_since(bucket.at).as_secs_f64().max(0.0);
    (bucket.level - elapsed / refill.as_secs_f64()).max(0.0)
}

/// Whether an account's failures no longer count: no lock in force, no attempt in flight, and
/// the last failure a day ago.
fn forgotten(account: &Account, now: Timestamp) -> bool {
    account.locked_until.is_none_or(|until| until <= now)
        && account.pending == 0
        && now.duration_since(account.last) > ACCOUNT_MEMORY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_ipv6_network_and_mapped_ipv4_as_ipv4() {
        let key = |ip: &str, prefix| address_key(ip.parse().unwrap(), prefix).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(key("2001:db8::1", 0), "::");
        assert_eq!(key("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("192.0.2.7", 64), "192.0.2.7");
    }
    use crate::config::Duration;

    fn limits() -> Limits {
        Limits::new(LimitSettings::default())
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_is_held_back_after_its_burst_of_failures_and_drains() {
        let limits = limits();
        let now = at("2027-01-01T00:00:00Z");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..30 {
            limits
                .begin(now, Check::Token, Some(ip), None)
                .unwrap()
                .failed(now);
        }
        let refused = limits
            .begin(now, Check::Token, Some(ip), None)
            .err()
            .unwrap();
        assert_eq!(refused.retry_after, SignedDuration::from_secs(2));
        let later = now + SignedDuration::from_secs(2);
        let attempt = limits.begin(later, Check::Token, Some(ip), None).unwrap();
        attempt.succeeded(later);
        assert!(
            limits.begin(later, Check::Token, Some(ip), None).is_ok(),
            "a success gives its slot back"
        );
    }

    #[test]
    fn token_attempts_in_flight_count_only_where_failures_were_seen() {
        let limits = limits();
        let now = at("2027-01-01T00:00:00Z");
        let clean: IpAddr = "192.0.2.3".parse().unwrap();
        let in_flight: Vec<_> = (0..100)
            .map(|_| limits.begin(now, Check::Token, Some(clean), None).unwrap())
            .collect();
        for attempt in in_flight {
            attempt.succeeded(now);
        }

        let guessing: IpAddr = "192.0.2.4".parse().unwrap();
        let attempt = limits
            .begin(now, Check::Token, Some(guessing), None)
            .unwrap();
        attempt.failed(now);
        let admitted: Vec<_> = (0..100)
            .map_while(|_| limits.begin(now, Check::Token, Some(guessing), None).ok())
            .collect();
        assert_eq!(
            admitted.len(),
            29,
            "one failure and 29 in flight fill the burst of 30"
        );
    }

    #[test]
    fn password_checks_in_flight_count_from_the_first() {
        let limits = limits();
        let now = at("2027-01-01T00:00:00Z");
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let admitted: Vec<_> = (0..200)
            .map_while(|_| {
                limits
                    .begin(now, Check::Password, Some(ip), Some("alice"))
                    .ok()
            })
            .collect();
        assert_eq!(
            admitted.len(),
            10,
            "the account's budget, before any failure"
        );

        // Other accounts from the same address share its burst of 30.
        let others: Vec<_> = (0..200)
            .map_while(|i| {
                let account = format!("user-{i}");
                limits
                    .begin(now, Check::Password, Some(ip), Some(&account))
                    .ok()
            })
            .collect();
        assert_eq!(others.len(), 20);
        // Token checks from a clean address are not held back by password checks.
        assert!(limits.begin(now, Check::Token, Some(ip), None).is_ok());

        let mut admitted = admitted.into_iter();
        admitted.next().unwrap().succeeded(now);
        let tenth = limits.begin(now, Check::Password, Some(ip), Some("alice"));
        let tenth = tenth.expect("a success gives its place back");
        for attempt in admitted.chain([tenth]) {
            attempt.failed(now);
        }
        let locked = limits
            .begin(now, Check::Password, None, Some("ALICE "))
            .err()
            .unwrap();
        assert_eq!(locked.retry_after, SignedDuration::from_mins(5));
    }

    #[test]
    fn a_dropped_attempt_gives_its_place_back_without_counting() {
        let limits = limits();
        let now = at("2027-01-01T00:00:00Z");
        let ip: IpAddr = "192.0.2.6".parse().unwrap();
        for _ in 0..100 {
            let attempt = limits.begin(now, Check::Password, Some(ip), Some("bob"));
            drop(attempt.unwrap());
        }
        assert_eq!(limits.tracked(), (1, 0));
        limits.prune(now);
        assert_eq!(limits.tracked(), (0, 0));
    }

    #[test]
    fn successes_never_count() {
        let limits = limits();
        let now = at("2027-01-01T00:00:00Z");
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..1000 {
            let attempt = limits.begin(now, Check::Password, Some(ip), Some("alice"));
            attempt.unwrap().succeeded(now);
        }
        assert_eq!(limits.tracked().1, 0);
    }

    #[test]
    fn an_account_locks_for_longer_each_time_up_to_the_maximum() {
        let limits = Limits::new(LimitSettings {
            account_lock: Duration(SignedDuration::from_mins(5)),
            account_lock_max: Duration(SignedDuration::from_mins(30)),
            ..LimitSettings::default()
        });
        let mut now = at("2027-01-01T00:00:00Z");
        for _ in 0..10 {
            limits
                .begin(now, Check::Password, None, Some("Bob"))
                .unwrap()
                .failed(now);
        }
        let mut locks = Vec::new();
        for _ in 0..5 {
            let locked = limits
                .begin(now, Check::Password, None, Some("bob"))
                .err()
                .unwrap();
            locks.push(locked.retry_after.as_mins());
            now += locked.retry_after;
            limits
                .begin(now, Check::Password, None, Some("bob"))
                .unwrap()
                .failed(now);
        }
        assert_eq!(locks, [5, 10, 20, 30, 30]);

        limits.unlock("BOB");
        let attempt = limits.begin(now, Check::Password, None, Some("bob"));
        assert!(attempt.is_ok(), "a password reset lifts the lock");
    }
}
