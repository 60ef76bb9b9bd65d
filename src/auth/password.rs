//! Passwords: the client hash CloudBeaver's clients send, and its Argon2id hash at rest.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use md5::{Digest as _, Md5};

use super::Error;

/// Runs `f` on one of the hashing threads, one a core, started on first use; `None` if it
/// panicked.
///
/// Each Argon2id hash needs 19 MiB. On the blocking pool, 64 parallel password logins ran 64
/// hashes at once on 2 cores, each many times slower, and dozens of threads kept their memory
/// (2.7 GB resident after the load benchmark). A few threads that take hashes in turn run each
/// at full speed, each with one reused buffer (`with_memory`).
pub async fn on_hashing_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static QUEUE: LazyLock<Mutex<mpsc::Sender<Job>>> = LazyLock::new(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("lodge-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("cannot start a password hashing thread");
        }
        Mutex::new(sender)
    });
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = answer.send(outcome.ok());
    });
    QUEUE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .ok()?;
    answered.await.ok().flatten()
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
#[derive(Clone)]
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

    /// Parses a password sent over the API, which may be the client hash.
    pub fn parse_credential(text: &str) -> Result<Self, Error> {
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Self(ClientHash::from_credential(text)));
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

/// Runs `f` with this thread's Argon2 memory, at least `blocks` long.
///
/// The argon2 crate allocates 19 MiB of 64-byte-aligned blocks for every hash when left to
/// itself, and glibc kept about 19 MiB more after each (166 MiB resident after 8 password logins,
/// measured). Each hashing thread keeps one buffer instead and reuses it.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        f(&mut memory[..blocks])
    })
}

/// The Argon2id hash of a random password nobody knows, with the same parameters as every stored
/// hash: checked when the user is unknown, so that failure costs the same as a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$QRkL0XHsUl0n2EL6rXCNKQ$C5Urh1O4TtWjAakayY6/iGhITKMzU2hKEKFHrxyaloY";

#[cfg(test)]
mod tests {
    use super::*;

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
}
