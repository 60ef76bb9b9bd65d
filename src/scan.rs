//! `lodge scan`: Lodge API tokens in files, found by their prefix, length and checksum, so that
//! a string of the right shape that is not a token is not reported.

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
};

use crate::auth::secret::{ApiTokenSecret, TOKEN_LEN, TOKEN_PREFIX};

/// Folders never read: version control's own and build output.
const SKIPPED: &[&str] = &[".git", "target", "node_modules"];

/// A token found: where.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// Counted from 1.
    pub line: usize,
}

/// What a scan found, and what it could not read (each said on standard error as it went).
#[derive(Debug, Default)]
pub struct Scanned {
    pub found: Vec<Found>,
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

/// Every token in these files and folders (the current folder when none), in path order. A
/// folder or file that cannot be read is named and passed over; the scan goes on.
pub fn scan(paths: &[PathBuf]) -> Scanned {
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut scanned = Scanned::default();
    for path in paths {
        walk(path, &mut scanned);
    }
    scanned
}

fn walk(path: &Path, scanned: &mut Scanned) {
    let mut unreadable = |e: io::Error| {
        eprintln!("lodge: cannot read {}: {e}; going on", path.display());
        scanned.unreadable.push((path.to_owned(), e));
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return unreadable(e),
    };
    if meta.is_dir() {
        let mut entries: Vec<_> = match std::fs::read_dir(path) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) => return unreadable(e),
        };
        entries.sort();
        for entry in entries {
            let skipped = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| SKIPPED.contains(&n));
            if !skipped {
                walk(&entry, scanned);
            }
        }
    } else if meta.is_file() {
        let lines = std::fs::File::open(path).and_then(tokens_in_reader);
        match lines {
            Ok(lines) => scanned.found.extend(lines.into_iter().map(|line| Found {
                path: path.to_owned(),
                line,
            })),
            Err(e) => unreadable(e),
        }
    }
    // Symbolic links are not followed: a link out of the tree, or a loop.
}

/// How much of a file is read at once: a file of any size is scanned in this much memory.
const CHUNK: usize = 64 * 1024;

/// The line of every token in what `reader` gives, text or not, read a chunk at a time.
pub fn tokens_in_reader(mut reader: impl Read) -> io::Result<Vec<usize>> {
    // A token may start in one chunk and end in the next: the bytes that could still begin one
    // (with the byte after it, which must not be a letter) stay for the next round.
    let keep = TOKEN_LEN + 1;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + keep);
    let mut chunk = vec![0; CHUNK];
    // The line buf[0] is on, and the byte just before buf[0].
    let (mut line, mut before) = (1, None);
    let mut lines = Vec::new();
    loop {
        let read = loop {
            match reader.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        buf.extend_from_slice(&chunk[..read]);
        let end = read == 0;
        let done = if end {
            buf.len()
        } else {
            buf.len().saturating_sub(keep)
        };
        let (mut counted, mut at_line) = (0, line);
        for start in token_starts(&buf, before, done) {
            at_line += newlines(&buf[counted..start]);
            counted = start;
            lines.push(at_line);
        }
        if end {
            return Ok(lines);
        }
        line += newlines(&buf[..done]);
        before = done.checked_sub(1).map(|i| buf[i]).or(before);
        buf.drain(..done);
    }
}

/// Where a token starts in `bytes` before `limit`, `before` being the byte ahead of `bytes`.
fn token_starts(bytes: &[u8], before: Option<u8>, limit: usize) -> Vec<usize> {
    let prefix = TOKEN_PREFIX.as_bytes();
    let mut starts = Vec::new();
    let mut at = 0;
    while at < limit {
        let Some(offset) = find(&bytes[at..], prefix) else {
            break;
        };
        let start = at + offset;
        if start >= limit {
            break;
        }
        let end = start + TOKEN_LEN;
        // A token stands alone: no letter or digit right before or after it.
        let ahead = start.checked_sub(1).map(|i| bytes[i]).or(before);
        let alone_before = ahead.is_none_or(|b| !b.is_ascii_alphanumeric());
        let alone_after = bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
        if alone_before
            && alone_after
            && let Some(candidate) = bytes.get(start..end)
            && let Ok(text) = std::str::from_utf8(candidate)
            && ApiTokenSecret::parse(text).is_ok()
        {
            starts.push(start);
        }
        at = start + 1;
    }
    starts
}

fn newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

/// The line of every token in `bytes`, text or not.
pub fn tokens_in(bytes: &[u8]) -> Vec<usize> {
    tokens_in_reader(bytes).expect("reading a slice cannot fail")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_checksum_and_a_lookalike_is_not() {
        let token = ApiTokenSecret::generate();
        let token = token.expose();
        let mut wrong = token.to_owned();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'a' { 'b' } else { 'a' });
        let text =
            format!("first line\nexport LODGE_TOKEN={token}\n{wrong}\nx{token}\n\"{token}\"");
        assert_eq!(tokens_in(text.as_bytes()), [2, 5]);
        assert_eq!(tokens_in(b"lodge_"), Vec::<usize>::new());
    }

    /// A reader that gives a few bytes at a time: every token crosses a read's end somewhere.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(7).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn tokens_across_chunks_are_found_once_on_their_line() {
        let token = ApiTokenSecret::generate();
        let token = token.expose();
        // Tokens placed so that one straddles the first chunk's end, and one sits after it.
        let mut text = "x\n".repeat(CHUNK / 2 - 10).into_bytes();
        text.extend_from_slice(format!("{token}\n").as_bytes());
        text.extend(std::iter::repeat_n(b'-', CHUNK));
        text.extend_from_slice(format!(" {token}").as_bytes());
        text.extend_from_slice(format!("\nx{token}\n").as_bytes());
        let first = CHUNK / 2 - 10 + 1;
        assert_eq!(tokens_in(&text), [first, first + 1]);
        assert_eq!(
            tokens_in_reader(Trickle(&text)).unwrap(),
            [first, first + 1]
        );
        let mut glued = b"a".to_vec();
        glued.extend(std::iter::repeat_n(b'-', CHUNK - 1));
        glued.extend_from_slice(format!("a{token}").as_bytes());
        assert_eq!(tokens_in(&glued), Vec::<usize>::new(), "a letter before it");
    }
}
