//! `lodge scan`: Lodge API tokens in files, found by their prefix, length and checksum, so that
//! a string of the right shape that is not a token is not reported.

use std::{
    io,
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

/// Every token in these files and folders (the current folder when none), in path order.
pub fn scan(paths: &[PathBuf]) -> io::Result<Vec<Found>> {
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut found = Vec::new();
    for path in paths {
        walk(path, &mut found)?;
    }
    Ok(found)
}

fn walk(path: &Path, found: &mut Vec<Found>) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            let skipped = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| SKIPPED.contains(&n));
            if !skipped {
                walk(&entry, found)?;
            }
        }
    } else if meta.is_file() {
        let bytes = std::fs::read(path)?;
        for line in tokens_in(&bytes) {
            found.push(Found {
                path: path.to_owned(),
                line,
            });
        }
    }
    // Symbolic links are not followed: a link out of the tree, or a loop.
    Ok(())
}

/// The line of every token in `bytes`, text or not.
pub fn tokens_in(bytes: &[u8]) -> Vec<usize> {
    let prefix = TOKEN_PREFIX.as_bytes();
    let mut lines = Vec::new();
    let mut at = 0;
    while let Some(offset) = find(&bytes[at..], prefix) {
        let start = at + offset;
        let end = start + TOKEN_LEN;
        // A token stands alone: no letter or digit right before or after it.
        let alone_before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let alone_after = bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
        if alone_before
            && alone_after
            && let Some(candidate) = bytes.get(start..end)
            && let Ok(text) = std::str::from_utf8(candidate)
            && ApiTokenSecret::parse(text).is_ok()
        {
            lines.push(1 + bytes[..start].iter().filter(|&&b| b == b'\n').count());
        }
        at = start + 1;
    }
    lines
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
}
