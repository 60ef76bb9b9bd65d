//! Webhooks (`[notify]`): the events a change announces, queued in the outbox inside that
//! change's transaction ([`outbox`]), and delivered from there by one sender task
//! ([`deliver`]) in the receiver's format ([`formats`]).
//!
//! The sender delivers the events waiting in the outbox (queued by [`outbox::queue`] in the transaction
//! of each change) to `notify.webhook_url`, oldest first, one at a time, on a task of its own: a
//! receiver that is slow, down or hanging delays deliveries, never a request.
//!
//! A delivery is removed once the receiver answers 2xx. Any other answer, or none within
//! [`TIMEOUT`], pauses the sender for a while that doubles with each failure in a row (1 s up to
//! 10 minutes); a delivery that has waited a day is dropped at its next failure,
//! with an error in the log. After a restart every waiting delivery is tried again: a receiver
//! may get one twice (when Lodge stopped between its answer and the removal), and tells them
//! apart by `id`.

pub mod config;
mod formats;
pub(crate) mod outbox;
mod sender;

pub use formats::signature;
pub use sender::{TASK, TIMEOUT, Webhook, deliver};
