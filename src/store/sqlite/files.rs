//! The database's files: whether they can be written, made private, and in use; the log
//! index's header read directly.

use std::{
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

/// The two copies of the write-ahead log index's header, as SQLite's file format documents them
/// (walformat.html): every commit of any process changes them (a counter, the last frame, the
/// checksums), and each process that uses the file reads them before every transaction.
pub type LogHeader = [u8; 96];

/// The log index's header in `index` (see [`Sqlite::log_header`]), when its two copies agree:
/// one `pread` of the file SQLite maps (the kernel's page cache is what SQLite's mapping shows).
/// It was mapped into this process as well until the mapping was measured against this read
/// and gave no clear gain to a token login (BENCHMARKS.md, "Optimisations").
#[cfg(unix)]
pub(in crate::store) fn read_log_header(index: &std::fs::File) -> Option<LogHeader> {
    use std::os::unix::fs::FileExt as _;
    let mut header = [0u8; 96];
    index.read_exact_at(&mut header, 0).ok()?;
    let (first, second) = header.split_at(48);
    (first == second).then_some(header)
}

/// `make` run with the process's file mode mask at `mask`, then the mask as it was. The mask is
/// the process's: only for the command line, where nothing else makes files meanwhile.
pub(in crate::store) fn with_umask<T>(mask: libc::mode_t, make: impl FnOnce() -> T) -> T {
    // SAFETY: umask sets the process's mask and gives the one before; it cannot fail.
    let before = unsafe { libc::umask(mask) };
    let made = make();
    // SAFETY: as above.
    unsafe { libc::umask(before) };
    made
}

/// Elsewhere the change counter is read in a transaction each time.
#[cfg(not(unix))]
pub(in crate::store) fn read_log_header(_: &std::fs::File) -> Option<LogHeader> {
    None
}

/// What cannot be written of the database: the file, or the folder SQLite makes its -wal and
/// -shm files in.
pub(in crate::store) enum NotWritable {
    File(std::io::Error),
    Folder(PathBuf, std::io::Error),
}

/// Why the database file or its folder cannot be written, if it cannot. SQLite would open such
/// a file read-only, or fail to make its log beside it, and say something vaguer later.
pub(in crate::store) fn not_writable(path: &Path) -> Option<NotWritable> {
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
pub(in crate::store) fn open_log_index(path: &Path) -> Option<Arc<std::fs::File>> {
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
    open_log_index(path).is_some_and(|index| dead_man_switch_held(&index).unwrap_or(false))
}

/// Whether any connection holds a lock on the "dead man switch" byte of the shared `index`:
/// what a process opening the database asks first, whether it may lock that byte for itself
/// alone. An open file description's lock conflicts with this process's own locks too.
#[cfg(unix)]
pub(in crate::store) fn dead_man_switch_held(index: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a zeroed `flock` is a valid value for the call to fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: a valid descriptor and a `flock` the call fills in.
    if unsafe { libc::fcntl(index.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}

#[cfg(not(unix))]
pub fn in_use(_path: &Path) -> bool {
    false
}

/// Creates `path` as an empty file only its owner may read and write (0600), unless it exists.
/// SQLite creates the -wal and -shm files with the database file's permissions, so they follow.
/// An existing symbolic link is not followed (`O_EXCL`).
pub(in crate::store) fn create_private(path: &Path) -> std::io::Result<()> {
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
