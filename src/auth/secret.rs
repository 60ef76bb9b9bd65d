//! Every secret the server hands out: API tokens and session ids, their digests and parsing.

use std::fmt;

/// The fixed start of every API token, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "lodge_";
/// 32 random bytes take 43 base62 digits (62^43 > 2^256).
const BODY_LEN: usize = 43;
/// A CRC32 takes 6 base62 digits (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The BLAKE3 digest under which a secret is stored.
pub type Digest = [u8; 32];

/// An API token whose prefix, length, alphabet and checksum are right.
pub struct ApiTokenSecret(String);

/// Why a text is not an API token; callers show every variant as the same login failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    Length,
    Prefix,
    Alphabet,
    Checksum,
}

impl ApiTokenSecret {
    /// A new token: 32 bytes from the operating system's generator.
    pub fn generate() -> Self {
        // 256 bits of entropy: guessing is out of reach however many tokens exist.
        let body = encode_fixed(&random_bytes(), BODY_LEN);
        let checksum = encode_fixed(
            &crc32fast::hash(body.as_bytes()).to_be_bytes(),
            CHECKSUM_LEN,
        );
        Self(format!("{TOKEN_PREFIX}{body}{checksum}"))
    }

    /// Checks the shape and checksum; needs no database.
    pub fn parse(text: &str) -> Result<Self, Malformed> {
        let text = text.trim();
        if text.len() != TOKEN_LEN {
            return Err(Malformed::Length);
        }
        let rest = text.strip_prefix(TOKEN_PREFIX).ok_or(Malformed::Prefix)?;
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Malformed::Alphabet);
        }
        let (body, checksum) = rest.split_at(BODY_LEN);
        let expected = encode_fixed(
            &crc32fast::hash(body.as_bytes()).to_be_bytes(),
            CHECKSUM_LEN,
        );
        if checksum != expected {
            return Err(Malformed::Checksum);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> Digest {
        *blake3::hash(self.0.as_bytes()).as_bytes()
    }
}

impl fmt::Debug for ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokenSecret(<redacted>)")
    }
}

/// The random part of a session cookie; only its digest is stored.
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn generate() -> Self {
        // 256 bits, as for tokens: a session cookie must not be guessable either.
        Self(encode_fixed(&random_bytes(), BODY_LEN))
    }

    pub fn digest(&self) -> Digest {
        *blake3::hash(self.0.as_bytes()).as_bytes()
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// The value of a `cb-session-id` cookie: `<session id>.<secret>`. The id finds the session's row
/// (a later session of the same user may take the row: `store::sessions`); the secret proves the
/// cookie was issued for the session now in it.
pub struct SessionCookie {
    pub id: i64,
    pub secret: SessionSecret,
}

impl SessionCookie {
    /// Any value this server could have issued; anything else names no session.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.split_once('.')?;
        // Digits only (`parse` would take a sign); too many for an i64 fail to parse.
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let secret_ok =
            secret.len() == BODY_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        if !(id_ok && secret_ok) {
            return None;
        }
        Some(Self {
            id: id.parse().ok()?,
            secret: SessionSecret(secret.to_owned()),
        })
    }

    /// The cookie's value: to be sent once, in `Set-Cookie`.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret.0)
    }

    /// Whether `stored` is the digest of this cookie's secret, in time that does not depend on
    /// where they differ.
    pub fn proves(&self, stored: &Digest) -> bool {
        blake3::Hash::from(self.secret.digest()) == blake3::Hash::from(*stored)
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionCookie({}.<redacted>)", self.id)
    }
}

/// A random id for logs and `authId`: 16 bytes in hex, not a secret.
pub fn random_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in &random_bytes()[..16] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

/// 32 bytes from the operating system's random generator.
///
/// Each thread fetches 512 bytes at a time and hands each out once, wiping it: a system call
/// for every secret was two calls in each token login.
fn random_bytes() -> [u8; 32] {
    const POOL: usize = 512;
    thread_local! {
        static UNUSED: std::cell::RefCell<([u8; POOL], usize)> =
            const { std::cell::RefCell::new(([0; POOL], POOL)) };
    }
    UNUSED.with_borrow_mut(|(pool, next)| {
        if *next == POOL {
            getrandom::fill(pool).expect("the operating system's random generator failed");
            *next = 0;
        }
        let taken = &mut pool[*next..*next + 32];
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(taken);
        taken.fill(0);
        *next += 32;
        bytes
    })
}

/// Big-endian bytes as exactly `len` base62 digits, most significant first.
///
/// Long division by 62^5 on 32-bit limbs gives five digits a pass (a byte-wise division by 62
/// took 4 % of a token login's CPU in the load benchmark's profile).
fn encode_fixed(bytes: &[u8], len: usize) -> String {
    const CHUNK: u64 = 62u64.pow(5);
    let pad = (4 - bytes.len() % 4) % 4;
    let padded: Vec<u8> = std::iter::repeat_n(0, pad)
        .chain(bytes.iter().copied())
        .collect();
    let mut limbs: Vec<u32> = padded
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut digits = vec![b'0'; len];
    let mut pos = len;
    while pos > 0 {
        let mut remainder = 0u64;
        for limb in limbs.iter_mut() {
            let value = (remainder << 32) | u64::from(*limb);
            *limb = (value / CHUNK) as u32;
            remainder = value % CHUNK;
        }
        for _ in 0..5 {
            if pos == 0 {
                debug_assert_eq!(remainder, 0, "value wider than {len} digits");
                break;
            }
            pos -= 1;
            digits[pos] = BASE62[(remainder % 62) as usize];
            remainder /= 62;
        }
    }
    debug_assert!(
        limbs.iter().all(|&l| l == 0),
        "value wider than {len} digits"
    );
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_never_handed_out_twice() {
        // Many times the pool, so that it is refilled several times.
        let taken: std::collections::HashSet<[u8; 32]> =
            (0..1000).map(|_| random_bytes()).collect();
        assert_eq!(taken.len(), 1000);
        assert!(!taken.contains(&[0; 32]));
    }

    #[test]
    fn encoding_matches_known_values() {
        assert_eq!(encode_fixed(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(encode_fixed(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(encode_fixed(&u32::MAX.to_be_bytes(), 6), "4gfFC3");
        assert_eq!(encode_fixed(&[0xff; 32], 43).len(), 43);
    }

    /// Digit by digit, as tokens were first encoded: the faster encoding must give the same text.
    fn one_digit_at_a_time(bytes: &[u8], len: usize) -> String {
        let mut number = bytes.to_vec();
        let mut digits = vec![b'0'; len];
        for slot in digits.iter_mut().rev() {
            let mut remainder = 0u32;
            for byte in number.iter_mut() {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 62) as u8;
                remainder = value % 62;
            }
            *slot = BASE62[remainder as usize];
        }
        String::from_utf8(digits).unwrap()
    }

    #[test]
    fn encoding_matches_the_digit_by_digit_encoding() {
        for _ in 0..2000 {
            let bytes = random_bytes();
            assert_eq!(encode_fixed(&bytes, 43), one_digit_at_a_time(&bytes, 43));
            assert_eq!(
                encode_fixed(&bytes[..4], 6),
                one_digit_at_a_time(&bytes[..4], 6)
            );
        }
        for edge in [[0u8; 32], [0xff; 32]] {
            assert_eq!(encode_fixed(&edge, 43), one_digit_at_a_time(&edge, 43));
        }
    }

    #[test]
    fn a_session_cookie_parses_back_and_proves_only_its_own_secret() {
        let secret = SessionSecret::generate();
        let digest = secret.digest();
        let cookie = SessionCookie { id: 42, secret };
        let text = cookie.expose();
        let parsed = SessionCookie::parse(&text).unwrap();
        assert_eq!(parsed.id, 42);
        assert!(parsed.proves(&digest));
        assert!(!parsed.proves(&SessionSecret::generate().digest()));
        let body = text.split_once('.').unwrap().1;
        for bad in [
            body.to_owned(),
            format!(".{body}"),
            format!("-1.{body}"),
            format!("4x.{body}"),
            format!("99999999999999999999.{body}"),
            format!("42.{}", &body[1..]),
            format!("42.{body}!"),
        ] {
            assert!(SessionCookie::parse(&bad).is_none(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_generated_token_parses_and_any_changed_character_does_not() {
        let token = ApiTokenSecret::generate();
        let text = token.expose().to_owned();
        assert_eq!(
            ApiTokenSecret::parse(&text).unwrap().digest(),
            token.digest()
        );
        for i in TOKEN_PREFIX.len()..text.len() {
            let mut changed = text.clone().into_bytes();
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                ApiTokenSecret::parse(&changed).is_err(),
                "{changed} was accepted"
            );
        }
        assert_eq!(
            ApiTokenSecret::parse(&text.replace("lodge_", "lodgX_")).unwrap_err(),
            Malformed::Prefix
        );
    }
}
