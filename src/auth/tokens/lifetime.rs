//! A token's lifetime rule: what each of its secrets gets, when it is made and at each rotation.

use jiff::{SignedDuration, Timestamp};

use super::lifetime_end;
use crate::config::Lifetime;

/// How long each secret of a token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeRule {
    /// A day, a week, a month or a year from the secret's making, or never ending.
    Calendar(Lifetime),
    /// The time a token made to end on a date had from its making to that date.
    Exactly(SignedDuration),
}

impl LifetimeRule {
    /// The column's text (store migration 014): `day` ... `never`, or `us:N`.
    pub fn to_stored(self) -> String {
        match self {
            Self::Calendar(lifetime) => match lifetime {
                Lifetime::Day => "day",
                Lifetime::Week => "week",
                Lifetime::Month => "month",
                Lifetime::Year => "year",
                Lifetime::Never => "never",
            }
            .to_owned(),
            Self::Exactly(length) => format!("us:{}", length.as_micros()),
        }
    }

    /// The rule a column's text names; `None` for text no Lodge wrote.
    pub fn from_stored(text: &str) -> Option<Self> {
        Some(Self::Calendar(match text {
            "day" => Lifetime::Day,
            "week" => Lifetime::Week,
            "month" => Lifetime::Month,
            "year" => Lifetime::Year,
            "never" => Lifetime::Never,
            other => {
                let micros: i64 = other.strip_prefix("us:")?.parse().ok()?;
                return (micros > 0).then(|| Self::Exactly(SignedDuration::from_micros(micros)));
            }
        }))
    }

    /// When a secret made at `from` stops, or `None` for never.
    pub fn end(self, from: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Calendar(lifetime) => lifetime_end(from, lifetime),
            Self::Exactly(length) => from.checked_add(length).ok(),
        }
    }

    /// Whether a secret made at `now` under this rule outlives one made under `other`.
    pub fn outlasts(self, other: Self, now: Timestamp) -> bool {
        match (self.end(now), other.end(now)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(mine), Some(theirs)) => mine > theirs,
        }
    }

    pub fn never_ends(self) -> bool {
        self == Self::Calendar(Lifetime::Never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_stored_and_read_back() {
        let rules = [
            LifetimeRule::Calendar(Lifetime::Day),
            LifetimeRule::Calendar(Lifetime::Week),
            LifetimeRule::Calendar(Lifetime::Month),
            LifetimeRule::Calendar(Lifetime::Year),
            LifetimeRule::Calendar(Lifetime::Never),
            LifetimeRule::Exactly(SignedDuration::from_hours(36)),
        ];
        for rule in rules {
            assert_eq!(LifetimeRule::from_stored(&rule.to_stored()), Some(rule));
        }
        for bad in ["", "forever", "us:", "us:-5", "us:0", "us:x"] {
            assert_eq!(LifetimeRule::from_stored(bad), None, "{bad}");
        }
    }

    #[test]
    fn never_outlasts_everything_and_nothing_outlasts_never() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let never = LifetimeRule::Calendar(Lifetime::Never);
        let year = LifetimeRule::Calendar(Lifetime::Year);
        let week = LifetimeRule::Calendar(Lifetime::Week);
        assert!(never.outlasts(year, now));
        assert!(!year.outlasts(never, now));
        assert!(!never.outlasts(never, now));
        assert!(year.outlasts(week, now));
        assert!(!week.outlasts(year, now));
        assert!(!week.outlasts(week, now));
        assert!(LifetimeRule::Exactly(SignedDuration::from_hours(24 * 8)).outlasts(week, now));
    }
}
