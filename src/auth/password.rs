//! Passwords: the client hash CloudBeaver's clients send, and its Argon2id hash at rest.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};
use std::sync::{Arc, Mutex, OnceLock, TryLockError, mpsc};

use md5::{Digest as _, Md5};

use super::Error;

/// A queued hash: runs it and gives how to send its caller the outcome.
type HashJob = Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send>;

/// The threads that compute password hashes, first come first served: as many as the setting
/// `limits.password_hashes_at_once` says, started on first use, stopped once the `Auth` that
/// owns them is gone.
///
/// Each Argon2id hash needs 19 MiB while it runs. On the blocking pool, 64 parallel password
/// logins ran 64 hashes at once on 2 cores, each many times slower, and dozens of threads kept
/// their memory (2.7 GB resident after the load benchmark). A few threads that take hashes in
/// turn run each at full speed, each with one buffer reused while hashes are waiting and freed
/// when none is (`with_memory`). One thread (the default) bounds the hashes' memory to 19 MiB
/// and leaves the other cores to everything else during a flood of password logins; each
/// thread more lets more password logins through a second, for 19 MiB more.
pub struct Hashers {
    threads: usize,
    queue: OnceLock<mpsc::Sender<HashJob>>,
}

impl Hashers {
    /// `at_once` threads; 0: one a core.
    pub fn new(at_once: u32) -> Self {
        let threads = match at_once {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Self {
            threads,
            queue: OnceLock::new(),
        }
    }

    /// Runs `f` on a hashing thread once the hashes queued before it are done; `None` if it
    /// panicked or no hashing thread could start.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            Box::new(move || {
                let _ = answer.send(outcome.ok());
            })
        });
        self.queue.get_or_init(|| self.start()).send(job).ok()?;
        answered.await.ok().flatten()
    }

    fn start(&self) -> mpsc::Sender<HashJob> {
        let (sender, receiver) = mpsc::channel::<HashJob>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..self.threads {
            let receiver = receiver.clone();
            let started = std::thread::Builder::new()
                .name(format!("lodge-hash-{i}"))
                .spawn(move || hash_in_turn(&receiver));
            if let Err(e) = started {
                // The threads started so far take the hashes; with none, each is answered None.
                tracing::error!(
                    "cannot start password hashing thread {} of {}: {e}",
                    i + 1,
                    self.threads
                );
                break;
            }
        }
        sender
    }
}

/// A hashing thread's work: the queued hashes in turn, until the queue is closed. After each, the
/// thread takes the next if one is queued and frees its Argon2 memory if none is, before it
/// answers: so a caller that queues its hash after another's answer finds the memory freed, and
/// one queued before it, kept.
fn hash_in_turn(receiver: &Mutex<mpsc::Receiver<HashJob>>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match receiver.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let answer = job();
        next = match receiver.try_lock() {
            Ok(queue) => queue.try_recv().ok(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().try_recv().ok(),
            // Another hashing thread holds the queue: almost always waiting on it, empty.
            Err(TryLockError::WouldBlock) => None,
        };
        if next.is_none() {
            release_memory();
        }
        answer();
    }
}

/// OWASP's first Argon2id choice: 19 MiB, two passes, one lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// What a client proves it knows: the upper-case hex MD5 of the password.
///
/// CloudBeaver's own clients send that hash (their credential profile says `encryption: hash`);
/// people and scripts send the password itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientHash(String);

impl ClientHash {
    /// A 32-hex-digit value is taken as the client hash, anything else as the password itself.
    pub fn from_credential(text: &str) -> Self {
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Self(text.to_ascii_uppercase())
        } else {
            Self::of_plain(text)
        }
    }

    pub fn of_plain(password: &str) -> Self {
        let digest = Md5::digest(password.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02X}")).collect())
    }
}

/// A new password as given by an administrator or its owner.
pub struct NewPassword(ClientHash);

impl NewPassword {
    pub const MIN_LEN: usize = 8;
    const MAX_LEN: usize = 1024;

    /// Parses a password sent over the API, which may be the client hash when `accept_hash`
    /// (`password.accept_client_hash`); never the hash of the empty password.
    pub fn parse_credential(text: &str, accept_hash: bool) -> Result<Self, Error> {
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if !accept_hash {
                return Err(Error::InvalidInput(
                    "a password of 32 hex digits is CloudBeaver's client hash, which this server \
                     does not take for a new password (password.accept_client_hash): send the \
                     password itself"
                        .into(),
                ));
            }
            let hash = ClientHash::from_credential(text);
            if hash == ClientHash::of_plain("") {
                return Err(Error::InvalidInput(
                    "that is the client hash of an empty password: choose a password".into(),
                ));
            }
            return Ok(Self(hash));
        }
        Self::parse_plain(text)
    }

    /// Parses a password typed by a person, which is never taken as a hash.
    pub fn parse_plain(text: &str) -> Result<Self, Error> {
        let chars = text.chars().count();
        if chars < Self::MIN_LEN {
            return Err(Error::InvalidInput(format!(
                "the password must have at least {} characters",
                Self::MIN_LEN
            )));
        }
        if chars > Self::MAX_LEN {
            return Err(Error::InvalidInput(format!(
                "the password must have at most {} characters",
                Self::MAX_LEN
            )));
        }
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(
                "a password of exactly 32 hex digits would be read as a client hash; choose another"
                    .into(),
            ));
        }
        Ok(Self(ClientHash::of_plain(text)))
    }

    /// The Argon2id hash to store. Slow on purpose: call it off the async threads.
    pub fn hash(&self) -> String {
        hash_client_hash(&self.0)
    }
}

/// A random password of 20 base62 characters for a generated account.
pub fn generate() -> String {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn hash_client_hash(client: &ClientHash) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random generator failed");
    let argon2 = argon2();
    let mut out = [0u8; 32];
    with_memory(argon2.params().block_count(), |memory| {
        argon2.hash_password_into_with_memory(client.0.as_bytes(), &salt, &mut out, memory)
    })
    .expect("Argon2 hashing with valid parameters");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    let out = Output::new(&out).expect("32 bytes make a valid output");
    let params = ParamsString::try_from(argon2.params()).expect("valid Argon2 parameters");
    format!("$argon2id$v=19${params}${}${out}", salt.as_str())
}

/// Checks `client` against a stored hash; an unreadable hash never matches.
/// Slow on purpose: call it off the async threads.
pub fn verify(client: &ClientHash, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        Params::try_from(&hash),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let Ok(version) = hash.version.map_or(Ok(Version::V0x13), Version::try_from) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let hashed = with_memory(argon2.params().block_count(), |memory| {
        argon2.hash_password_into_with_memory(client.0.as_bytes(), salt, &mut out, memory)
    });
    // Output's equality takes the same time whatever the bytes.
    hashed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

thread_local! {
    /// A hashing thread's Argon2 memory, kept from one hash to the next while hashes wait.
    static MEMORY: std::cell::RefCell<Option<memmap2::MmapMut>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's Argon2 memory, at least `blocks` long.
///
/// The argon2 crate allocates 19 MiB of 64-byte-aligned blocks for every hash when left to
/// itself, and glibc kept about 19 MiB more after each (166 MiB resident after 8 password logins,
/// measured); mimalloc too kept a freed buffer resident. Each hashing thread maps its memory from
/// the system itself, reuses it while hashes are queued, and unmaps it when none is.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with_borrow_mut(|memory| {
        let bytes = blocks * size_of::<Block>();
        if memory.as_ref().is_none_or(|m| m.len() < bytes) {
            *memory = None;
            *memory =
                Some(memmap2::MmapMut::map_anon(bytes).unwrap_or_else(|e| {
                    panic!("cannot map {bytes} bytes for a password hash: {e}")
                }));
        }
        let memory = memory.as_mut().expect("mapped above");
        // SAFETY: a Block is 128 u64s, for which any bytes are valid, and the mapping starts at
        // a page, aligned for a Block's 64 bytes; `align_to_mut` checks both sides' alignment.
        let (before, memory, _) = unsafe { memory.align_to_mut::<Block>() };
        assert!(before.is_empty(), "a mapping starts at a page");
        f(&mut memory[..blocks])
    })
}

/// Unmaps this thread's Argon2 memory: a hashing thread with nothing to do would otherwise hold
/// 19 MiB until the next hash.
fn release_memory() {
    MEMORY.with_borrow_mut(|memory| *memory = None);
}

/// How many Argon2 blocks this thread holds.
#[cfg(test)]
fn memory_held() -> usize {
    MEMORY.with_borrow(|memory| memory.as_ref().map_or(0, |m| m.len() / size_of::<Block>()))
}

/// The Argon2id hash of a random password nobody knows, with the same parameters as every stored
/// hash: checked when the user is unknown, so that failure costs the same as a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$QRkL0XHsUl0n2EL6rXCNKQ$C5Urh1O4TtWjAakayY6/iGhITKMzU2hKEKFHrxyaloY";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{poll_once, queue};

    #[test]
    fn plain_password_and_its_client_hash_are_the_same_credential() {
        let stored = NewPassword::parse_plain("correct horse").unwrap().hash();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let md5 = ClientHash::of_plain("correct horse").0;
        assert!(verify(
            &ClientHash::from_credential("correct horse"),
            &stored
        ));
        assert!(verify(&ClientHash::from_credential(&md5), &stored));
        assert!(verify(
            &ClientHash::from_credential(&md5.to_lowercase()),
            &stored
        ));
        assert!(!verify(
            &ClientHash::from_credential("correct horses"),
            &stored
        ));
    }

    /// Hashes stored before Argon2 ran on reused memory, made by the argon2 crate's own
    /// PasswordHasher, still verify; and what is hashed now reads back with the crate's verifier.
    #[test]
    fn hashes_agree_with_the_argon2_crates_own() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let client = ClientHash::of_plain("correct horse");
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = argon2()
            .hash_password(client.0.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(verify(&client, &theirs));
        assert!(!verify(&ClientHash::of_plain("correct horses"), &theirs));
        let ours = hash_client_hash(&client);
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2()
                .verify_password(client.0.as_bytes(), &parsed)
                .is_ok()
        );
        assert!(!verify(&client, DUMMY_HASH));
        assert!(!verify(&client, "not a hash"));
    }

    /// With one hashing thread a second hash waits for the first; with two it runs meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_configured() {
        let wait = std::time::Duration::from_secs(30);
        for (at_once, both_at_once) in [(1, false), (2, true)] {
            let hashers = Hashers::new(at_once);
            let (running, first_runs) = mpsc::channel();
            let (end, first_may_end) = mpsc::channel::<()>();
            let mut first = Box::pin(hashers.run(move || {
                running.send(()).unwrap();
                first_may_end.recv_timeout(wait).unwrap();
            }));
            queue(&mut first);
            first_runs.recv_timeout(wait).unwrap();
            let (running, second_runs) = mpsc::channel();
            let mut second = Box::pin(hashers.run(move || running.send(()).unwrap()));
            // With a free thread the second may be done before this first poll returns.
            let polled = poll_once(&mut second);
            let meanwhile = second_runs.recv_timeout(std::time::Duration::from_millis(500));
            assert_eq!(meanwhile.is_ok(), both_at_once, "{at_once} at once");
            end.send(()).unwrap();
            assert_eq!(first.await, Some(()));
            match polled {
                std::task::Poll::Ready(outcome) => assert_eq!(outcome, Some(())),
                std::task::Poll::Pending => assert_eq!(second.await, Some(())),
            }
            if !both_at_once {
                second_runs.recv_timeout(wait).unwrap();
            }
        }
    }

    /// A hashing thread keeps its Argon2 memory for a hash queued while it hashed, and frees it
    /// when no hash is waiting.
    #[tokio::test]
    async fn a_hashing_thread_frees_its_memory_when_no_hash_waits() {
        let hashers = Hashers::new(1);
        let blocks = argon2().params().block_count();
        let (end, may_end) = mpsc::channel::<()>();
        let mut first = Box::pin(hashers.run(move || {
            let stored = NewPassword::parse_plain("correct horse").unwrap().hash();
            may_end
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            stored
        }));
        queue(&mut first);
        let mut queued_meanwhile = Box::pin(hashers.run(memory_held));
        queue(&mut queued_meanwhile);
        end.send(()).unwrap();
        let stored = first.await.unwrap();
        assert_eq!(
            queued_meanwhile.await,
            Some(blocks),
            "kept for the next hash"
        );
        assert_eq!(
            hashers.run(memory_held).await,
            Some(0),
            "freed when none waited"
        );
        let client = ClientHash::of_plain("correct horse");
        assert_eq!(
            hashers.run(move || verify(&client, &stored)).await,
            Some(true)
        );
    }
}
