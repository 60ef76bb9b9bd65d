//! The time every expiry is measured by; tests move it by hand instead of sleeping.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use jiff::{SignedDuration, Timestamp};

/// The system clock, or a manual one that only moves when told.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock stopped at `start`, moved with [`Clock::advance`].
    pub fn manual(start: Timestamp) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start.as_microsecond()))),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &self.manual {
            // Microseconds, as stored: a time read back equals the time written.
            None => Timestamp::from_microsecond(Timestamp::now().as_microsecond())
                .expect("the system time is within jiff's range"),
            Some(micros) => Timestamp::from_microsecond(micros.load(Ordering::SeqCst))
                .expect("manual clock stays within jiff's range"),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: SignedDuration) {
        let micros = self
            .manual
            .as_ref()
            .expect("only a manual clock can be advanced");
        micros.fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }
}
