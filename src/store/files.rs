//! The database's files: whether they can be written, made private, the log index read
//! directly, and copied whole (`lodge backup`).

use std::{
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, backup::StepResult};

use super::sqlite::{BUSY_TIMEOUT, LogHeader, Sqlite};

/// The log index's header in `index` (see [`Sqlite::log_header`]), when its two copies agree:
/// one `pread` of the file SQLite maps (the kernel's page cache is what SQLite's mapping shows).
/// It was mapped into this process as well until the mapping was measured against this read
/// and gave no clear gain to a token login (BENCHMARKS.md, "Optimisations").
#[cfg(unix)]
pub(super) fn read_log_header(index: &std::fs::File) -> Option<LogHeader> {
    use std::os::unix::fs::FileExt as _;
    let mut header = [0u8; 96];
    index.read_exact_at(&mut header, 0).ok()?;
    let (first, second) = header.split_at(48);
    (first == second).then_some(header)
}

/// `make` run with the process's file mode mask at `mask`, then the mask as it was. The mask is
/// the process's: only for the command line, where nothing else makes files meanwhile.
fn with_umask<T>(mask: libc::mode_t, make: impl FnOnce() -> T) -> T {
    // SAFETY: umask sets the process's mask and gives the one before; it cannot fail.
    let before = unsafe { libc::umask(mask) };
    let made = make();
    // SAFETY: as above.
    unsafe { libc::umask(before) };
    made
}

/// Elsewhere the change counter is read in a transaction each time.
#[cfg(not(unix))]
pub(super) fn read_log_header(_: &std::fs::File) -> Option<LogHeader> {
    None
}

/// What cannot be written of the database: the file, or the folder SQLite makes its -wal and
/// -shm files in.
pub(super) enum NotWritable {
    File(std::io::Error),
    Folder(PathBuf, std::io::Error),
}

/// Why the database file or its folder cannot be written, if it cannot. SQLite would open such
/// a file read-only, or fail to make its log beside it, and say something vaguer later.
pub(super) fn not_writable(path: &Path) -> Option<NotWritable> {
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return Some(NotWritable::File(e));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".lodge-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(NotWritable::Folder(dir.to_owned(), e)),
    }
}

/// The write-ahead log's shared index (`lodge.db-shm`), opened once for the store's life.
pub(super) fn open_log_index(path: &Path) -> Option<Arc<std::fs::File>> {
    let mut index_path = path.as_os_str().to_owned();
    index_path.push("-shm");
    std::fs::File::open(index_path).ok().map(Arc::new)
}

/// Whether another connection, of this process or another (a running server), has the SQLite
/// database at `path` open: every connection in WAL mode holds a shared lock on the "dead man
/// switch" byte of the shared index (offset 128 on Unix) while it is open. Asked with an open
/// file description's lock, which conflicts with any process's.
#[cfg(unix)]
pub fn in_use(path: &Path) -> bool {
    use std::os::fd::AsRawFd as _;
    let Some(index) = open_log_index(path) else {
        return false;
    };
    // SAFETY: a zeroed `flock` is a valid value for the call to fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: a valid descriptor and a `flock` the call fills in.
    let asked = unsafe { libc::fcntl(index.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    asked == 0 && i32::from(lock.l_type) != libc::F_UNLCK
}

#[cfg(not(unix))]
pub fn in_use(_path: &Path) -> bool {
    false
}

/// Creates `path` as an empty file only its owner may read and write (0600), unless it exists.
/// SQLite creates the -wal and -shm files with the database file's permissions, so they follow.
/// An existing symbolic link is not followed (`O_EXCL`).
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

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
