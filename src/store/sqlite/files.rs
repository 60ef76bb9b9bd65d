//! The database's files: whether they can be written, made private, and in use; the log
//! index's header read from memory.

use std::{
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

/// The two copies of the write-ahead log index's header, as SQLite's file format documents them
/// (walformat.html): every commit of any process changes them (a counter, the last frame, the
/// checksums), and each process that uses the file reads them before every transaction.
pub type LogHeader = [u8; 96];

/// The write-ahead log's shared index (`lodge.db-shm`), held open for the store's life, with
/// its header mapped into this process as SQLite maps it. Reading the header is then a copy of
/// 96 bytes from memory, where a `pread` is a system call on every request that trusts what is
/// kept in memory (two a Bearer request: the token's check and the query's).
pub(in crate::store) struct LogIndex {
    /// Held, not read: POSIX drops every lock this process holds on the file when any of its
    /// descriptors of the file closes (see `Sqlite::around`).
    _file: std::fs::File,
    map: Option<memmap2::Mmap>,
}

impl LogIndex {
    /// `file` held, and its header mapped when the file is long enough. A shorter one (never
    /// seen: SQLite sizes it before its first read) would make reading the mapping fault; then
    /// [`LogIndex::header`] is `None` and the counter is read in a transaction.
    fn new(file: std::fs::File) -> Self {
        let long_enough = file
            .metadata()
            .is_ok_and(|m| m.len() >= size_of::<LogHeader>() as u64);
        // SAFETY: reading the mapping faults only if another process truncates the file, which
        // SQLite does only when it is the first to open the database: never while a connection
        // of this process is open, since each holds its lock on the file. The header is read by
        // the store, which keeps the writer's connection open, and by the writer thread, before
        // it closes that connection (see `Sqlite::around`). Its bytes change under it; `header`
        // reads them with volatile copies.
        let map = long_enough
            .then(|| unsafe {
                memmap2::MmapOptions::new()
                    .len(size_of::<LogHeader>())
                    .map(&file)
            })
            .and_then(Result::ok);
        Self { _file: file, map }
    }

    /// The header now, when its two copies agree (they differ while a commit writes them).
    pub(in crate::store) fn header(&self) -> Option<LogHeader> {
        let map = self.map.as_ref()?;
        let mut header = [0u8; 96];
        for (i, byte) in header.iter_mut().enumerate() {
            // SAFETY: `i` is within the mapping's 96 bytes; volatile, since other threads and
            // processes write them while this reads.
            *byte = unsafe { map.as_ptr().add(i).read_volatile() };
        }
        // What is read after this (the counter kept with a header) is not read before it.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let (first, second) = header.split_at(48);
        (first == second).then_some(header)
    }
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
pub(in crate::store) fn open_log_index(path: &Path) -> Option<Arc<LogIndex>> {
    open_index_file(path).map(|file| Arc::new(LogIndex::new(file)))
}

/// The shared index's file, if it exists.
pub(in crate::store) fn open_index_file(path: &Path) -> Option<std::fs::File> {
    let mut index_path = path.as_os_str().to_owned();
    index_path.push("-shm");
    std::fs::File::open(index_path).ok()
}

/// Whether another connection, of this process or another (a running server), has the SQLite
/// database at `path` open: every connection in WAL mode holds a shared lock on the "dead man
/// switch" byte of the shared index (offset 128 on Unix) while it is open. Asked with an open
/// file description's lock, which conflicts with any process's.
#[cfg(unix)]
pub fn in_use(path: &Path) -> bool {
    open_index_file(path).is_some_and(|index| dead_man_switch_held(&index).unwrap_or(false))
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
