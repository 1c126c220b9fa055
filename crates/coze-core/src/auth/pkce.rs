//! PKCE (RFC 7636) verifier and S256 challenge, the OAuth `state`, and the small
//! random/comparison helpers the OAuth code needs.
//!
//! `coze-auth` sends the challenge in the authorize URL and the verifier in the token
//! request (the Coze API docs, `oauth_pkce`), and checks the `state` that comes back to
//! the loopback listener. Randomness comes straight from the OS via `getrandom`; no
//! user-space generator is seeded. This module does not build URLs, talk HTTP or store
//! anything, and it never logs or prints the verifier.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// RFC 7636 §4.1 "unreserved" characters, the only ones a verifier may contain.
const UNRESERVED: &[u8; 66] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// Length of generated verifiers (RFC 7636 allows 43..=128); 64 characters of a
/// 66-symbol alphabet carry about 386 bits.
const VERIFIER_LEN: usize = 64;

/// A PKCE verifier and its S256 challenge.
#[derive(Clone)]
pub struct Pkce {
    /// The secret half: kept by the client and sent only with the token request.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))` without padding: sent in the authorize URL.
    pub challenge: String,
}

/// Written by hand so that logging a `Pkce` never leaks the verifier, which is the
/// secret that proves possession of the authorization code.
impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"<redacted>")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    /// A fresh verifier of 64 characters drawn uniformly from the unreserved set,
    /// and its S256 challenge.
    pub fn generate() -> Result<Pkce, getrandom::Error> {
        // 66 does not divide 256, so `byte % 66` would favour the first 58 symbols.
        // Accept only bytes below 198 (= 3 * 66), where every symbol has exactly
        // three preimages, and draw again for the rest (~23% of bytes).
        const LIMIT: u8 = (256 / UNRESERVED.len() * UNRESERVED.len()) as u8;
        let mut verifier = String::with_capacity(VERIFIER_LEN);
        let mut pool = [0u8; 96];
        while verifier.len() < VERIFIER_LEN {
            getrandom::fill(&mut pool)?;
            for &b in &pool {
                if b < LIMIT && verifier.len() < VERIFIER_LEN {
                    verifier.push(char::from(UNRESERVED[usize::from(b) % UNRESERVED.len()]));
                }
            }
        }
        let challenge = challenge_s256(&verifier);
        Ok(Pkce {
            verifier,
            challenge,
        })
    }
}

/// BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2, "S256").
pub fn challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An OAuth `state`: 32 random bytes, base64url without padding (43 characters).
pub fn random_state() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares secrets (such as the returned `state`) without an early exit on the
/// first differing byte, so timing does not reveal how long a matching prefix is.
/// Lengths are not secret here, so a length mismatch returns at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into a short-circuit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        // The RFC gives the verifier as the base64url of these 32 octets.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = URL_SAFE_NO_PAD.encode(octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge_s256(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn coze_sdk_vector() {
        assert_eq!(
            challenge_s256("code_verifier"),
            "73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM"
        );
    }

    #[test]
    fn generated_verifiers_are_valid_and_distinct() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        for p in [&a, &b] {
            assert_eq!(p.verifier.len(), 64);
            assert!(p.verifier.bytes().all(|c| UNRESERVED.contains(&c)));
            assert_eq!(p.challenge, challenge_s256(&p.verifier));
            assert_eq!(p.challenge.len(), 43);
        }
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(a.challenge, b.challenge);
    }

    #[test]
    fn generated_verifiers_cover_the_alphabet() {
        // 200 verifiers are 12,800 draws; each symbol is expected ~194 times, so
        // every symbol appears and none dominates unless the sampling is broken.
        let mut counts = [0u32; 256];
        for _ in 0..200 {
            for c in Pkce::generate().unwrap().verifier.bytes() {
                counts[usize::from(c)] += 1;
            }
        }
        for &c in UNRESERVED {
            let n = counts[usize::from(c)];
            assert!(
                (80..=330).contains(&n),
                "{:?} drawn {n} times",
                char::from(c)
            );
        }
    }

    #[test]
    fn debug_redacts_the_verifier() {
        let p = Pkce::generate().unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains(&p.verifier));
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains(&p.challenge));
        assert!(!format!("{p:#?}").contains(&p.verifier));
    }

    #[test]
    fn state_is_43_url_safe_chars_and_differs() {
        let a = random_state().unwrap();
        let b = random_state().unwrap();
        for s in [&a, &b] {
            assert_eq!(s.len(), 43);
            assert!(s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(URL_SAFE_NO_PAD.decode(s).unwrap().len(), 32);
        }
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_eq_truth_table() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(b"a", b""));
        assert!(!constant_time_eq(&[0x00], &[0x80]));
        let s = random_state().unwrap();
        assert!(constant_time_eq(s.as_bytes(), s.clone().as_bytes()));
    }
}
