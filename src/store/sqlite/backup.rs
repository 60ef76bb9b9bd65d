//! `lodge backup` and the database's size: the live file copied page by page.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, backup::StepResult};

use super::{Sqlite, connection::BUSY_TIMEOUT, files::with_umask};

impl Sqlite {
    /// The bytes of the database file and its write-ahead log.
    pub fn size(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Copies the live database to a new file at `to` with SQLite's online backup, page by page,
    /// while others keep reading and writing; then checks the copy.
    pub fn backup_to(&self, to: &Path) -> anyhow::Result<()> {
        // Never through a symbolic link, dangling or not: it would write wherever it points.
        if let Ok(found) = std::fs::symlink_metadata(to) {
            if found.file_type().is_symlink() {
                anyhow::bail!(
                    "{} is a symbolic link; a backup never follows one: choose a new file",
                    to.display()
                );
            }
            anyhow::bail!("{} exists already; choose a new file", to.display());
        }
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            anyhow::bail!(
                "the folder {} does not exist: create it first, or choose a file in another",
                dir.display()
            );
        }
        let source = self.conn()?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // Readable by its owner only from the moment it exists, as the database is: a file
        // made readable and narrowed afterwards could be opened by anyone in between, and the
        // open file would show the copy. Made by SQLite, which refuses a path with a symbolic
        // link in it (a file made first by us would follow a linked folder), under a umask that
        // leaves its owner alone.
        let mut target = with_umask(0o077, || Connection::open_with_flags(to, flags))
            .with_context(|| {
                format!(
                    "cannot create the backup file {} (a path through a symbolic link is refused)",
                    to.display()
                )
            })?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make the backup file {} private", to.display()))?;
        // No journal file beside it, which could be a planted link too; a backup cut short is
        // a broken new file, never a change to the database.
        target.pragma_update(None, "journal_mode", "MEMORY")?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
            // All pages in one step, inside one read transaction: in WAL mode writers go on, and
            // the copy is one consistent snapshot instead of restarting at every write.
            let started = std::time::Instant::now();
            loop {
                let step = backup
                    .step(-1)
                    .with_context(|| format!("cannot write the backup to {}", to.display()))?;
                match step {
                    StepResult::Done => break,
                    _ if started.elapsed() > BUSY_TIMEOUT => {
                        anyhow::bail!("the database stayed locked; no backup was written")
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        let check: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            anyhow::bail!(
                "the backup at {} failed its integrity check: {check}",
                to.display()
            );
        }
        Ok(())
    }
}
