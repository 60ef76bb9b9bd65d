//! Each user's sessions, by kind, kept in memory by the writer: how a login finds the session
//! to end (or the row to take) at its cap without an index on disk.

use std::collections::{HashMap, VecDeque};

use super::{Digest, NewSession, delete, insert, reuse};
use crate::store::{
    Result,
    change_counter::{self, Counters},
    db::{Tx, args},
    sqlite::stretch,
};

/// Sessions read from the table at most at once while the lists are read: about a millisecond.
const READ_AT_ONCE: usize = 4096;

/// Each user's sessions, oldest first, as the server's writer last left them: how a login finds
/// the session to end (or the row to take) at `session.max_per_user`, and `forceSessionsLogout`
/// the user's others, without an index on disk (migration 004 says why there is none). Ids do not
/// follow age once rows are taken again, so a list read from the table is sorted by opening time.
///
/// Only the server opens sessions; any process may end them. (Two servers on one file would each
/// hold a user to the limit among the sessions it opened itself.) The lists are exact while the
/// count of ended sessions (`change_counter.sessions_ended`) is where the server's own writes left
/// it, and are read again from the table when it has moved. A write that changed the lists and
/// then failed leaves them to be read again too.
///
/// The table is read in parts of [`READ_AT_ONCE`] sessions, one part in each session write,
/// so that the first login after a start waits for one part, not for 100,000 sessions (40 ms).
/// Until the last part, logins end no session for the limit; the write that reads the last part
/// ends what is then beyond it.
#[derive(Debug)]
pub struct UserSessions {
    /// The count of ended sessions the lists are exact at; `None`: to be read again.
    exact_at: Option<i64>,
    /// While the table is being read: the last session id read so far. Sessions opened
    /// meanwhile come later in the table and are read with it.
    reading_after: Option<i64>,
    read_at_once: usize,
    /// Each user's sessions by kind (`None`: opened with a password; else the token's id), each
    /// list oldest first.
    by_user: HashMap<i64, HashMap<Option<i64>, VecDeque<i64>>>,
    /// While the table is being read: when each session read was opened, to sort the lists by
    /// once it is read whole.
    opened: HashMap<i64, i64>,
    /// The change counters as the last session write left them, and where it left them: see
    /// [`UserSessions::counters`].
    left: Option<(Place, Counters)>,
    /// Several nodes open sessions (PostgreSQL): nothing is held here, each write reads the
    /// table.
    by_table: bool,
}

/// A place in the writer's batch: its stretch ([`stretch`]) and the connection's
/// `total_changes` (which counts the rows triggers change too).
type Place = (u64, u64);

/// Where in the SQLite writer's batch `tx` is, or `None` outside a batch's transaction.
fn place(tx: &Tx) -> Option<Place> {
    let Tx::Sqlite(conn) = tx else {
        return None;
    };
    let stretch = stretch();
    (stretch != 0 && !conn.is_autocommit()).then(|| (stretch, conn.total_changes()))
}

impl Default for UserSessions {
    fn default() -> Self {
        Self {
            exact_at: None,
            reading_after: None,
            read_at_once: READ_AT_ONCE,
            by_user: HashMap::new(),
            opened: HashMap::new(),
            left: None,
            by_table: false,
        }
    }
}

/// How many sessions a user keeps at most: opened with a password (`session.max_per_user`), and
/// opened with each one of their API tokens (`session.max_per_token`). A login beyond ends the
/// oldest session of its own kind only, so a script that logs in with its token again and
/// again never ends its owner's browser session.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub password: u32,
    pub token: u32,
}

impl Caps {
    fn keep(&self, token: Option<i64>) -> usize {
        match token {
            None => self.password,
            Some(_) => self.token,
        }
        .max(1) as usize
    }
}

/// The same cap for both kinds.
impl From<u32> for Caps {
    fn from(keep: u32) -> Self {
        Self {
            password: keep,
            token: keep,
        }
    }
}

impl UserSessions {
    /// Brings the lists up to the transaction `conn` holds, where `sessions_ended` is the count
    /// of ended sessions just read in it: reads the next part of the table if it is being read
    /// (from the start when the count moved), and once it is read whole, ends each user's
    /// sessions beyond their newest `keep`. Gives the ids it ended.
    pub fn sync(
        &mut self,
        conn: &Tx,
        sessions_ended: i64,
        caps: impl Into<Caps>,
    ) -> Result<Vec<i64>> {
        if let Tx::Postgres(_) = conn {
            // Several nodes open sessions: none holds the lists; each login reads its user's.
            self.by_table = true;
            return Ok(Vec::new());
        }
        let outcome = self.read_part(conn, sessions_ended, caps.into());
        if outcome.is_err() {
            // A part read halfway, or ends rolled back with the write: read again.
            self.exact_at = None;
        }
        outcome
    }

    fn read_part(&mut self, conn: &Tx, sessions_ended: i64, caps: Caps) -> Result<Vec<i64>> {
        if self.exact_at != Some(sessions_ended) {
            self.by_user.clear();
            self.opened.clear();
            self.reading_after = Some(0);
            self.exact_at = Some(sessions_ended);
        }
        let Some(after) = self.reading_after else {
            return Ok(Vec::new());
        };
        let rows = conn.query_all(
            "SELECT id, user_id, created_at, token_id FROM sessions WHERE id > ?1
             ORDER BY id LIMIT ?2",
            args![after, self.read_at_once as i64],
            |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<i64>(1)?,
                    row.get::<i64>(2)?,
                    row.get::<Option<i64>>(3)?,
                ))
            },
        )?;
        let (mut read, mut last) = (0, after);
        for (id, user, opened, token) in rows {
            last = id;
            let kinds = self.by_user.entry(user).or_default();
            kinds.entry(token).or_default().push_back(id);
            self.opened.insert(id, opened);
            read += 1;
        }
        if read == self.read_at_once {
            self.reading_after = Some(last);
            return Ok(Vec::new());
        }
        self.reading_after = None;
        let opened = std::mem::take(&mut self.opened);
        for held in self.by_user.values_mut().flat_map(HashMap::values_mut) {
            held.make_contiguous()
                .sort_unstable_by_key(|id| (opened.get(id).copied().unwrap_or(i64::MAX), *id));
        }
        let over: Vec<i64> = self
            .by_user
            .iter()
            .filter(|(_, kinds)| kinds.iter().any(|(k, held)| held.len() > caps.keep(*k)))
            .map(|(&user, _)| user)
            .collect();
        let mut ended = Vec::new();
        for user in over {
            ended.extend(self.trim(conn, user, caps)?);
        }
        Ok(ended)
    }

    /// The change counters in the writer's transaction `conn`: those the last session write left
    /// ([`UserSessions::leave`]) while nothing can have moved them since (the same stretch of the
    /// batch, no row changed since), else read. Under a flood of logins each one but the first
    /// of a batch then reads them once, at its end, instead of before and after its write.
    pub fn counters(&self, conn: &Tx) -> Result<Counters> {
        match self.left {
            Some((at, counters)) if place(conn) == Some(at) => Ok(counters),
            _ => change_counter::counters(conn),
        }
    }

    /// Notes the counters a session write leaves, read at its end in `conn`.
    pub fn leave(&mut self, conn: &Tx, counters: Counters) {
        self.left = place(conn).map(|at| (at, counters));
    }

    /// Whether the table has been read whole (the limit is kept).
    pub fn read_whole(&self) -> bool {
        !self.by_table && self.exact_at.is_some() && self.reading_after.is_none()
    }

    /// The rows of the user's sessions, when the lists are read whole: some may have ended
    /// since, in another process (read them to know). `None` while the table is being read.
    pub fn ids_of(&self, user: i64) -> Option<Vec<i64>> {
        if !self.read_whole() {
            return None;
        }
        Some(
            self.by_user
                .get(&user)
                .map(|kinds| kinds.values().flatten().copied().collect())
                .unwrap_or_default(),
        )
    }

    /// After a write of the server's own that left the count of ended sessions at
    /// `sessions_ended`, or failed (`None`).
    pub fn settle(&mut self, sessions_ended: Option<i64>) {
        self.exact_at = sessions_ended;
    }

    /// Opens a session in the table and in the lists.
    fn insert(&mut self, conn: &Tx, session: &NewSession<'_>) -> Result<i64> {
        let id = insert(conn, session)?;
        if self.reading_after.is_none() {
            let kinds = self.by_user.entry(session.user).or_default();
            kinds.entry(session.token_id).or_default().push_back(id);
        }
        Ok(id)
    }

    /// Opens a session for a user who keeps at most so many of its kind ([`Caps`]): when they
    /// hold that many, the oldest of that kind ends and the new one takes its row (while the
    /// table is being read, a new row, and the limit waits for the end of the reading). Gives
    /// the new session's id and the ids of the sessions that ended.
    pub fn open(
        &mut self,
        conn: &Tx,
        session: &NewSession<'_>,
        caps: impl Into<Caps>,
    ) -> Result<(i64, Vec<i64>)> {
        let kind = session.token_id;
        let keep = caps.into().keep(kind);
        if let Tx::Postgres(_) = conn {
            return open_by_table(conn, session, keep);
        }
        let mut ended = Vec::new();
        if self.reading_after.is_none()
            && let Some(held) = self
                .by_user
                .get_mut(&session.user)
                .and_then(|kinds| kinds.get_mut(&kind))
            && held.len() >= keep
        {
            ended = held.drain(..=held.len() - keep).collect();
            let (&reused, others) = ended.split_last().expect("at least one");
            for &id in others {
                delete(conn, id)?;
            }
            if reuse(conn, reused, session)? {
                held.push_back(reused);
                return Ok((reused, ended));
            }
        }
        Ok((self.insert(conn, session)?, ended))
    }

    /// Ends the session of `user`'s with this id and digest; whether it existed. The caller knows
    /// the user from the session it read: finding it with `RETURNING user_id` cost as much again
    /// as the delete.
    pub fn delete(&mut self, conn: &Tx, user: i64, id: i64, digest: &Digest) -> Result<bool> {
        let ended = conn.execute(
            "DELETE FROM sessions WHERE id = ?1 AND secret_digest = ?2",
            args![id, &digest[..]],
        )? > 0;
        if !ended {
            return Ok(false);
        }
        // The session's kind is not kept (a map of it cost 17 MiB at 500,000 sessions): a user
        // holds a few lists of at most `Caps` each, searched here on a logout or an expiry.
        if let Some(kinds) = self.by_user.get_mut(&user) {
            for held in kinds.values_mut() {
                held.retain(|&other| other != id);
            }
            kinds.retain(|_, held| !held.is_empty());
            if kinds.is_empty() {
                self.by_user.remove(&user);
            }
        }
        Ok(true)
    }

    /// Ends the user's oldest sessions beyond the newest each kind keeps ([`Caps`]); gives the
    /// ids it ended. While the table is being read, ends none: the write that reads its end does.
    fn trim(&mut self, conn: &Tx, user: i64, caps: impl Into<Caps>) -> Result<Vec<i64>> {
        if self.reading_after.is_some() {
            return Ok(Vec::new());
        }
        let caps = caps.into();
        let Some(kinds) = self.by_user.get_mut(&user) else {
            return Ok(Vec::new());
        };
        let mut ended = Vec::new();
        for (kind, held) in kinds.iter_mut() {
            let beyond = held.len().saturating_sub(caps.keep(*kind));
            ended.extend(held.drain(..beyond));
        }
        for &id in &ended {
            delete(conn, id)?;
        }
        Ok(ended)
    }

    /// Ends every session of the user but `keep`; gives the ids it ended.
    pub fn end_user(&mut self, conn: &Tx, user: i64, keep: i64) -> Result<Vec<i64>> {
        if let Tx::Postgres(_) = conn {
            return conn.query_all(
                "DELETE FROM sessions WHERE user_id = ?1 AND id <> ?2 RETURNING id",
                args![user, keep],
                |r| r.get::<i64>(0),
            );
        }
        let mut ended = Vec::new();
        if let Some(kinds) = self.by_user.get_mut(&user) {
            for held in kinds.values_mut() {
                ended.extend(held.iter().copied().filter(|&id| id != keep));
                held.retain(|&id| id == keep);
            }
            kinds.retain(|_, held| !held.is_empty());
        }
        for &id in &ended {
            delete(conn, id)?;
        }
        if let Some(after) = self.reading_after {
            // Those not read yet: found by reading the rest of the table.
            ended.extend(conn.query_all(
                "DELETE FROM sessions WHERE user_id = ?1 AND id > ?2 AND id <> ?3 RETURNING id",
                args![user, after, keep],
                |r| r.get::<i64>(0),
            )?);
        }
        Ok(ended)
    }
}

/// [`UserSessions::open`] where several nodes open sessions (PostgreSQL): the user's sessions
/// of the kind are read from the table (indexed by user there), in the write that holds every
/// node's write lock, so the limit holds across nodes.
fn open_by_table(tx: &Tx, session: &NewSession<'_>, keep: usize) -> Result<(i64, Vec<i64>)> {
    let held = tx.query_all(
        "SELECT id FROM sessions WHERE user_id = ?1 AND token_id IS NOT DISTINCT FROM ?2
         ORDER BY created_at, id",
        args![session.user, session.token_id],
        |r| r.get::<i64>(0),
    )?;
    if held.len() < keep {
        return Ok((insert(tx, session)?, Vec::new()));
    }
    // Rows are not taken again here (SQLite's saving of a page): a new row's id is then always
    // the newest, which orders sessions opened within one microsecond.
    let ended: Vec<i64> = held[..=held.len() - keep].to_vec();
    for &id in &ended {
        delete(tx, id)?;
    }
    Ok((insert(tx, session)?, ended))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rusqlite::{Connection, OptionalExtension as _};

    use super::*;
    use crate::store::{
        Tx, change_counter,
        sessions::{delete_for_user, touch},
        sqlite::{
            Sqlite,
            testing::{Write, in_one_batch},
        },
        users,
    };

    /// No limit in these tests but where one is given.
    const NO_LIMIT: u32 = u32::MAX;

    /// The lists as one more server would read them from the table now.
    fn read_afresh(conn: &Tx) -> HashMap<i64, HashMap<Option<i64>, VecDeque<i64>>> {
        let mut fresh = UserSessions::default();
        assert!(fresh.sync(conn, -1, NO_LIMIT).unwrap().is_empty());
        assert!(fresh.read_whole(), "read in one part");
        fresh.by_user
    }

    fn add_user(conn: &Tx, name: &str) -> i64 {
        let user = users::NewUser {
            user_id: name,
            display_name: name,
            role: "user",
            enabled: true,
            password_hash: None,
            now: 0,
        };
        users::insert(conn, &user).unwrap()
    }

    fn session(user: i64) -> NewSession<'static> {
        NewSession {
            secret_digest: &[7; 32],
            user,
            provider: "local",
            token_id: None,
            now: 0,
            address: None,
            user_agent: None,
            grants: None,
            token_generation: None,
        }
    }

    fn digest(conn: &Tx, id: i64) -> Option<Digest> {
        conn.sqlite()
            .query_row(
                "SELECT secret_digest FROM sessions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }

    fn ended(conn: &Tx) -> i64 {
        change_counter::counters(conn).unwrap().sessions_ended
    }

    #[test]
    fn the_lists_follow_opens_trims_and_ends_and_are_read_again_after_ends_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("c.db")).unwrap();
        let mut conn = store.conn().unwrap();
        let transaction = conn.transaction().unwrap();
        let tx = Tx::Sqlite(&transaction);
        let (ann, bob) = (add_user(&tx, "ann"), add_user(&tx, "bob"));
        let mut lists = UserSessions::default();
        lists.sync(&tx, ended(&tx), NO_LIMIT).unwrap();
        let mut open = |user: i64| lists.insert(&tx, &session(user)).unwrap();
        let ann_sessions: Vec<i64> = (0..5).map(|_| open(ann)).collect();
        let bob_sessions: Vec<i64> = (0..3).map(|_| open(bob)).collect();
        assert_eq!(lists.trim(&tx, ann, 3).unwrap(), ann_sessions[..2]);
        assert!(lists.trim(&tx, ann, 3).unwrap().is_empty());
        assert!(!lists.delete(&tx, ann, ann_sessions[3], &[8; 32]).unwrap());
        assert!(lists.delete(&tx, ann, ann_sessions[3], &[7; 32]).unwrap());
        assert!(!lists.delete(&tx, ann, ann_sessions[3], &[7; 32]).unwrap());
        assert_eq!(
            lists.end_user(&tx, bob, bob_sessions[1]).unwrap(),
            [bob_sessions[0], bob_sessions[2]]
        );
        lists.settle(Some(ended(&tx)));
        assert_eq!(lists.by_user, read_afresh(&tx));
        assert_eq!(
            lists.by_user[&ann][&None],
            [ann_sessions[2], ann_sessions[4]]
        );

        // Another process deletes a user: their sessions go by the cascade, the count moves, and
        // the lists are read again.
        tx.sqlite()
            .execute("DELETE FROM users WHERE id = ?1", [bob])
            .unwrap();
        lists.sync(&tx, ended(&tx), NO_LIMIT).unwrap();
        assert!(!lists.by_user.contains_key(&bob));
        assert_eq!(lists.by_user, read_afresh(&tx));
    }

    #[test]
    fn the_table_is_read_in_parts_and_the_limit_applies_once_it_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("p.db")).unwrap();
        let mut conn = store.conn().unwrap();
        let transaction = conn.transaction().unwrap();
        let tx = Tx::Sqlite(&transaction);
        let (ann, bob, cy) = (
            add_user(&tx, "ann"),
            add_user(&tx, "bob"),
            add_user(&tx, "cy"),
        );
        // As a server found them at its start: ann 4, bob 3, cy 2 sessions.
        let held = |user: i64, n: usize| -> Vec<i64> {
            (0..n)
                .map(|_| insert(&tx, &session(user)).unwrap())
                .collect()
        };
        let (ann_held, bob_held, cy_held) = (held(ann, 4), held(bob, 3), held(cy, 2));
        let mut lists = UserSessions {
            read_at_once: 3,
            ..UserSessions::default()
        };
        let keep = 2;
        let at = ended(&tx);

        // First part: ann's first three. A login of ann's opens a session the reading will
        // reach, and ends none for the limit yet.
        assert!(lists.sync(&tx, at, keep).unwrap().is_empty());
        let ann_new = lists.insert(&tx, &session(ann)).unwrap();
        assert!(lists.trim(&tx, ann, keep).unwrap().is_empty());
        // Second part: ann's fourth, bob's first two. bob's forceSessionsLogout ends the two
        // read and the one not read yet.
        assert!(lists.sync(&tx, at, keep).unwrap().is_empty());
        let bob_new = lists.insert(&tx, &session(bob)).unwrap();
        let mut bob_ended = lists.end_user(&tx, bob, bob_new).unwrap();
        bob_ended.sort_unstable();
        assert_eq!(bob_ended, bob_held);
        // As the server's write does after each of its own: the count moved by its own ends.
        let at = ended(&tx);
        lists.settle(Some(at));
        // Third part: cy's two and ann's new one: a full part, so one more to see the end.
        assert!(lists.sync(&tx, at, keep).unwrap().is_empty());
        // The last part (bob's new one), and then the limit: ann's three oldest end.
        let mut ended_for_limit = lists.sync(&tx, at, keep).unwrap();
        ended_for_limit.sort_unstable();
        assert_eq!(ended_for_limit, ann_held[..3]);
        assert_eq!(lists.by_user[&ann][&None], [ann_held[3], ann_new]);
        assert_eq!(lists.by_user[&bob][&None], [bob_new]);
        assert_eq!(lists.by_user[&cy][&None], cy_held);
        lists.settle(Some(ended(&tx)));
        assert_eq!(lists.by_user, read_afresh(&tx));
        // Read whole: a login is listed at once and trims its user at once.
        let ann_newest = lists.insert(&tx, &session(ann)).unwrap();
        assert_eq!(lists.trim(&tx, ann, keep).unwrap(), [ann_held[3]]);
        assert_eq!(lists.by_user[&ann][&None], [ann_new, ann_newest]);
    }

    #[test]
    fn a_login_at_the_limit_takes_the_oldest_row_and_writes_for_the_old_session_miss_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("r.db")).unwrap();
        let mut conn = store.conn().unwrap();
        let transaction = conn.transaction().unwrap();
        let tx = Tx::Sqlite(&transaction);
        let (ann, bob) = (add_user(&tx, "ann"), add_user(&tx, "bob"));
        let mut lists = UserSessions::default();
        lists.sync(&tx, ended(&tx), 2).unwrap();
        let opened = |at: i64, digest: &'static Digest| NewSession {
            secret_digest: digest,
            now: at,
            ..session(ann)
        };
        let (first, none) = lists.open(&tx, &opened(1, &[1; 32]), 2).unwrap();
        assert!(none.is_empty());
        let (second, _) = lists.open(&tx, &opened(2, &[2; 32]), 2).unwrap();
        lists.open(&tx, &session(bob), 2).unwrap();

        // At the limit: the third takes the first's row, the fourth the second's.
        assert_eq!(
            lists.open(&tx, &opened(3, &[3; 32]), 2).unwrap(),
            (first, vec![first])
        );
        assert_eq!(digest(&tx, first), Some([3; 32]));
        assert_eq!(
            lists.open(&tx, &opened(4, &[4; 32]), 2).unwrap(),
            (second, vec![second])
        );
        assert_eq!(lists.by_user[&ann][&None], [first, second]);

        // A logout or an expiry seen for the first session ends nothing now; a touch misses too.
        assert!(!lists.delete(&tx, ann, first, &[1; 32]).unwrap());
        assert!(!touch(&tx, first, &[1; 32], 9).unwrap());
        assert!(touch(&tx, first, &[3; 32], 9).unwrap());
        // Keeping the first session while ending the others keeps neither of the new ones.
        assert_eq!(
            delete_for_user(&tx, ann, Some((first, &[1; 32]))).unwrap(),
            2
        );
        lists.settle(None);
        lists.sync(&tx, ended(&tx), 2).unwrap();
        let (kept, _) = lists.open(&tx, &opened(5, &[5; 32]), 2).unwrap();
        lists.open(&tx, &opened(6, &[6; 32]), 2).unwrap();
        assert_eq!(
            delete_for_user(&tx, ann, Some((kept, &[5; 32]))).unwrap(),
            1
        );
        assert_eq!(digest(&tx, kept), Some([5; 32]));

        // Read afresh, the lists follow the opening times, not the ids.
        lists.settle(None);
        lists.sync(&tx, ended(&tx), 2).unwrap();
        let (newest, _) = lists.open(&tx, &opened(7, &[7; 32]), 2).unwrap();
        assert_eq!(lists.by_user[&ann][&None], [kept, newest]);
        tx.sqlite()
            .execute("UPDATE sessions SET created_at = 8 WHERE id = ?1", [kept])
            .unwrap();
        assert_eq!(read_afresh(&tx)[&ann][&None], [newest, kept]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_counters_a_session_write_left_are_used_only_while_nothing_can_have_moved_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Sqlite::open(&path).unwrap();
        store.write(|c| Ok(add_user(c, "ann"))).await.unwrap();
        let lists = Arc::new(Mutex::new(UserSessions::default()));
        // Each gives what `UserSessions::counters` says and what the table holds.
        type Seen = (Counters, Counters);
        let look = |lists: &Arc<Mutex<UserSessions>>| -> Write<Option<Seen>> {
            let lists = lists.clone();
            Box::new(move |c| {
                let said = lists.lock().unwrap().counters(c)?;
                Ok(Some((said, change_counter::counters(c)?)))
            })
        };
        // A session write's end: it moves the counter, reads it and leaves it; then, if told,
        // fails, so that the writer rolls it back.
        let leave = |lists: &Arc<Mutex<UserSessions>>, fail: bool| -> Write<Option<Seen>> {
            let lists = lists.clone();
            Box::new(move |c| {
                c.sqlite()
                    .execute("UPDATE users SET display_name = display_name || '.'", [])?;
                let after = change_counter::counters(c)?;
                lists.lock().unwrap().leave(c, after);
                if fail {
                    return Err(crate::store::StoreError::WriteNotRun);
                }
                Ok(None)
            })
        };
        let other: Write<Option<Seen>> = Box::new(|c| {
            c.sqlite().execute("UPDATE users SET role = role", [])?;
            Ok(None)
        });
        let outcomes = in_one_batch(
            &store,
            vec![
                leave(&lists, false),
                look(&lists),
                // Another write moves the counter: what was left no longer holds.
                other,
                look(&lists),
                // A write that left the counters is rolled back: they go back with it.
                leave(&lists, false),
                leave(&lists, true),
                look(&lists),
                leave(&lists, false),
            ],
        )
        .await;
        let seen: Vec<Seen> = outcomes
            .into_iter()
            .filter_map(|o| o.ok().flatten())
            .collect();
        assert_eq!(seen.len(), 3);
        for (said, held) in &seen {
            assert_eq!(said, held);
        }
        let changes: Vec<i64> = seen.iter().map(|(_, held)| held.change_counter).collect();
        assert_eq!(changes[1], changes[0] + 1, "the other write moved it");
        assert_eq!(
            changes[2],
            changes[1] + 1,
            "the rolled back write's move is gone"
        );

        // Between batches another process moves the counter; the next batch reads it.
        let left = seen[2].1.change_counter + 1;
        let other_process = Connection::open(&path).unwrap();
        other_process
            .execute("UPDATE users SET display_name = 'Ann'", [])
            .unwrap();
        let outcomes = in_one_batch(&store, vec![look(&lists)]).await;
        let (said, held) = outcomes.into_iter().next().unwrap().unwrap().unwrap();
        assert_eq!(said, held);
        assert_eq!(held.change_counter, left + 1);
    }
}
