//! Sessions, tokens and users' token lists the server has looked up, kept while the database's
//! change counter (`store::change_counter`) has not moved past what they were read at.
//!
//! Every update or delete of a user, token or session, and every new token, moves the counter on
//! in its own transaction, whichever process makes it. A request reads the counter (one small read) before
//! it trusts anything kept here, so `lodge token delete` in another process takes effect for the
//! next request as it would without this memory. The server's own session writes (a login's
//! trimming, a logout, a last-access update) say what they changed, so they update what is kept
//! instead of forgetting everything.
//!
//! Reading the counter is a read transaction, whose locks cost more than the rest of a lookup;
//! `Store::change_counter` reuses the one read last while nothing was committed since.
//!
//! The counter only grows; a database file swapped under a running server is not supported.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{grants::Grants, secret::Digest};
use crate::store::{sessions::SessionRow, tokens::TokenRow, users::UserRow};

/// Entries kept at most of each kind; a full map starts afresh, so memory stays bounded.
const MAX_ENTRIES: usize = 16 * 1024;

/// A token and its owner as read together, the token's grants parsed (and taken out of the
/// row, so that a kept entry's clone copies no text).
#[derive(Debug, Clone)]
pub(super) struct TokenEntry {
    pub token: TokenRow,
    pub user: UserRow,
    pub grants: Option<Arc<Grants>>,
}

/// What one of the server's own writes changed of the kept sessions.
#[derive(Debug, Clone, Copy)]
pub(super) enum SessionChange {
    Ended(i64),
    Seen { id: i64, at: i64 },
}

#[derive(Default)]
pub(super) struct Cache {
    kept: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The counter everything kept is valid at.
    counter: i64,
    /// The server's own session writes queued or being committed (see [`OwnWrite`]).
    own_writes: usize,
    tokens: HashMap<Digest, TokenEntry>,
    sessions: HashMap<i64, SessionRow>,
    /// Each user's tokens, all of them, oldest first: by user row id.
    token_lists: HashMap<i64, Arc<Vec<TokenRow>>>,
}

impl Entries {
    /// Brings what is kept up to the counter `counter`, just read from the database: false
    /// when it cannot be used at that counter now.
    fn advance(&mut self, counter: i64) -> bool {
        if counter <= self.counter {
            // Valid at a counter at least as new as the caller saw.
            return true;
        }
        if self.own_writes > 0 {
            // Most likely one of the server's own writes, committed but not yet applied here (it
            // is, in a moment, on the writer thread). Forgetting everything then would forget it
            // at every commit under a login flood; the caller reads the database instead.
            return false;
        }
        self.forget(counter);
        true
    }

    fn forget(&mut self, counter: i64) {
        self.tokens.clear();
        self.sessions.clear();
        self.token_lists.clear();
        self.counter = counter;
    }
}

/// Which of the maps of [`Entries`] a lookup is in.
type Map<K, V> = fn(&mut Entries) -> &mut HashMap<K, V>;

/// One of the server's own session writes, from before it is queued until what it changed is
/// applied (or it failed): while one exists, a counter that moved is not a reason to forget.
pub(super) struct OwnWrite(Arc<Cache>);

impl OwnWrite {
    /// The write committed: [`Cache::committed`], and only then the mark goes.
    pub fn committed(self, before: i64, after: i64, changes: &[SessionChange]) {
        self.0.committed(before, after, changes);
    }
}

impl Drop for OwnWrite {
    fn drop(&mut self) {
        self.0.kept().own_writes -= 1;
    }
}

impl Cache {
    fn kept(&self) -> MutexGuard<'_, Entries> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token with this digest, if kept and the database's counter is still `counter`.
    pub fn token(&self, counter: i64, digest: &Digest) -> Option<TokenEntry> {
        self.get(counter, |k| &mut k.tokens, digest)
    }

    /// Keeps a token read in a snapshot at `counter`.
    pub fn keep_token(&self, counter: i64, digest: Digest, entry: TokenEntry) {
        self.keep(counter, |k| &mut k.tokens, digest, entry);
    }

    /// The session with this id, if kept and the database's counter is still `counter`.
    pub fn session(&self, counter: i64, id: i64) -> Option<SessionRow> {
        self.get(counter, |k| &mut k.sessions, &id)
    }

    /// Keeps a session read in a snapshot at `counter`.
    pub fn keep_session(&self, counter: i64, row: SessionRow) {
        self.keep(counter, |k| &mut k.sessions, row.id, row);
    }

    /// A user's tokens, if kept and the database's counter is still `counter`.
    pub fn token_list(&self, counter: i64, user: i64) -> Option<Arc<Vec<TokenRow>>> {
        self.get(counter, |k| &mut k.token_lists, &user)
    }

    /// Keeps a user's tokens read in a snapshot at `counter`.
    pub fn keep_token_list(&self, counter: i64, user: i64, tokens: Arc<Vec<TokenRow>>) {
        self.keep(counter, |k| &mut k.token_lists, user, tokens);
    }

    fn get<K: Eq + Hash, V: Clone>(&self, counter: i64, map: Map<K, V>, key: &K) -> Option<V> {
        let mut kept = self.kept();
        if !kept.advance(counter) {
            return None;
        }
        map(&mut kept).get(key).cloned()
    }

    fn keep<K: Eq + Hash, V>(&self, counter: i64, map: Map<K, V>, key: K, value: V) {
        let mut kept = self.kept();
        if kept.advance(counter) && kept.counter == counter {
            insert_bounded(map(&mut kept), key, value);
        }
    }

    /// Marks one of the server's own session writes, to be dropped once it has settled.
    pub fn own_write(self: &Arc<Self>) -> OwnWrite {
        self.kept().own_writes += 1;
        OwnWrite(self.clone())
    }

    /// After one of the server's own writes, committed, that moved the counter from `before` to
    /// `after` (it held the write lock, so nothing else moved it). Each of `changes` moved it by
    /// one; when the write changed more than it lists, everything is forgotten.
    pub fn committed(&self, before: i64, after: i64, changes: &[SessionChange]) {
        let mut kept = self.kept();
        let all_listed = usize::try_from(after - before).is_ok_and(|n| n == changes.len());
        if kept.counter == before && all_listed {
            for change in changes {
                match *change {
                    SessionChange::Ended(id) => {
                        kept.sessions.remove(&id);
                    }
                    SessionChange::Seen { id, at } => {
                        if let Some(row) = kept.sessions.get_mut(&id) {
                            row.last_seen_at = at;
                        }
                    }
                }
            }
            kept.counter = after;
        } else if kept.counter <= before {
            // Behind: something else changed the database before this write, and what is kept
            // may predate it; or this write changed more than it says.
            kept.forget(after);
        }
        // Ahead: everything kept was read after this write.
    }
}

fn insert_bounded<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::UserRow;

    fn session(id: i64) -> SessionRow {
        SessionRow {
            id,
            secret_digest: [0; 32],
            provider: "token".into(),
            token_id: None,
            created_at: 0,
            last_seen_at: 0,
            token_expires_at: None,
            token_needs_admin: false,
            token_name: None,
            grants: None,
            token_generation: None,
            token_now_generation: None,
            token_grace_until: None,
            user: UserRow {
                id: 1,
                user_id: "alice".into(),
                display_name: "Alice".into(),
                role: "user".into(),
                enabled: true,
                password_hash: None,
                created_at: 0,
            },
        }
    }

    #[test]
    fn a_moved_counter_forgets_everything_and_an_older_read_is_not_kept() {
        let r = Cache::default();
        r.keep_session(5, session(1));
        assert!(r.session(5, 1).is_some());
        // Another process changed something: counter 6 is read before the next lookup.
        assert!(r.session(6, 1).is_none());
        // A read from before that change must not come back.
        r.keep_session(5, session(1));
        assert!(r.session(6, 1).is_none());
        r.keep_session(6, session(1));
        assert!(r.session(6, 1).is_some());
        // A lookup that read the counter just before the last keep may use what is kept.
        assert!(r.session(5, 1).is_some());
    }

    #[test]
    fn a_counter_moved_while_an_own_write_settles_is_neither_trusted_nor_a_reason_to_forget() {
        let r = Arc::new(Cache::default());
        r.keep_session(3, session(1));
        let write = r.own_write();
        // The write committed 3 -> 4; a lookup reads 4 before the writer thread applies it.
        assert!(r.session(4, 1).is_none());
        r.keep_session(4, session(2));
        assert!(
            r.session(3, 2).is_none(),
            "kept at a counter not yet reached here"
        );
        r.committed(3, 4, &[SessionChange::Seen { id: 1, at: 7 }]);
        drop(write);
        assert_eq!(r.session(4, 1).unwrap().last_seen_at, 7);
        // No own write pending: a moved counter forgets everything.
        assert!(r.session(5, 1).is_none());
        r.committed(4, 5, &[]);
        assert!(r.session(5, 1).is_none());
    }

    #[test]
    fn own_writes_update_what_is_kept_in_commit_order() {
        let r = Cache::default();
        r.keep_session(3, session(1));
        r.keep_session(3, session(2));
        r.committed(3, 4, &[SessionChange::Seen { id: 1, at: 99 }]);
        r.committed(4, 6, &[SessionChange::Ended(2), SessionChange::Ended(3)]);
        assert_eq!(r.session(6, 1).unwrap().last_seen_at, 99);
        assert!(r.session(6, 2).is_none());
        // A write that changed more than it lists: everything is forgotten.
        r.committed(6, 8, &[SessionChange::Ended(2)]);
        assert!(r.session(8, 1).is_none());
        // A write that began after a change nobody here saw: everything is forgotten too.
        r.keep_session(8, session(1));
        r.committed(9, 10, &[SessionChange::Ended(7)]);
        assert!(r.session(10, 1).is_none());
    }
}
