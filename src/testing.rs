//! Helpers shared by unit tests.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

/// Polls a future once, which hands its work to another thread (a queue); ready already if
/// that thread took and finished the work within the poll.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Queues a future's work that cannot have finished yet: polls it once, which must leave it
/// pending.
pub fn queue<F: Future + Unpin>(future: &mut F) {
    assert!(poll_once(future).is_pending());
}
