//! Service apps (the Coze API docs, `oauth_jwt`; coze-py's `JWTOAuthApp`, coze-go's
//! `GenerateJWT`): the short RS256 JWT signed with the app's private
//! key, which `oauth::mint` trades at the token endpoint for an access token, with no
//! person and no refresh token. Renewing is minting again, so a `token` record minted
//! so also says how to mint the next one ([`JwtGrant`]: `grant: "jwt"`, the key's path,
//! its `kid`, the TTL, the session name; never the key itself), and `renew` re-mints.
//!
//! The PEM armour is read here (PKCS#8 `BEGIN PRIVATE KEY` and PKCS#1 `BEGIN RSA
//! PRIVATE KEY`); the RSA arithmetic is ring's (already in the build through rustls).
//! Encoding and signing are pure and unit-tested against a signature made by openssl;
//! the key file is read through `secret_file::read_private_file`, which refuses a file
//! that group or others can read, as ssh does. Not here: the HTTP call (`oauth`).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secret_file::read_private_file;
use crate::error::{Error, Result};
use crate::protocol::{Extra, Token};
use crate::support::random::random_hex;

/// `duration_seconds` when none is asked for: 900 s, the Coze API docs' default
/// (`oauth_jwt`).
pub const DEFAULT_TTL: u32 = 900;
/// The longest `duration_seconds` Coze grants (`oauth_jwt`): a day less a second.
pub const MAX_TTL: u32 = 86_399;

/// How long a signed JWT is valid (`exp - iat`). It is used at once and only once (Coze
/// refuses a reused `jti`), so the window only has to absorb clock skew between this
/// host and Coze; an hour is what the py and js SDKs use.
pub const JWT_LIFETIME: i64 = 3600;

/// The `grant` value of a token record minted from a JWT.
pub const GRANT: &str = "jwt";

/// The JOSE header: `{"alg":"RS256","typ":"JWT","kid":…}`, in that order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The signature algorithm: `RS256`, what Coze expects.
    pub alg: String,
    /// `JWT`.
    pub typ: String,
    /// The public key's id, as the OAuth app's console shows it: Coze checks the
    /// signature with that key.
    pub kid: String,
}

impl Header {
    /// The header of an RS256 JWT signed with the key Coze knows as `kid`.
    pub fn rs256(kid: &str) -> Header {
        Header {
            alg: "RS256".into(),
            typ: "JWT".into(),
            kid: kid.into(),
        }
    }
}

/// The claims Coze reads (the Coze API docs, `oauth_jwt`). Fields are public so tests
/// can forge bad ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The app's client id.
    pub iss: String,
    /// The API host without scheme, e.g. `api.coze.cn` (see [`audience`]).
    pub aud: String,
    /// Issued at: Unix seconds.
    pub iat: i64,
    /// Expires at: Unix seconds, [`JWT_LIFETIME`] after `iat`.
    pub exp: i64,
    /// Random and unique per JWT.
    pub jti: String,
    /// The business side's user id (`--session-name`): the token's conversations are
    /// kept apart from other session names'. Absent when not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
}

impl Claims {
    /// Claims for one token request at `now`, with a fresh 32-byte random `jti` (the Coze
    /// API docs recommend more than 32 characters; 64 hex digits carry 256 bits).
    pub fn new(client_id: &str, aud: &str, now: i64, session_name: Option<&str>) -> Result<Claims> {
        let jti = random_hex(32)
            .map_err(|e| Error::Auth(format!("no randomness for the JWT id: {e}")))?;
        Ok(Claims {
            iss: client_id.into(),
            aud: aud.into(),
            iat: now,
            exp: now + JWT_LIFETIME,
            jti,
            session_name: session_name.map(str::to_owned),
        })
    }
}

/// The `aud` for an API base: its `host[:port]`, as coze-py's `urlparse(base_url).netloc`.
pub fn audience(api_base: &str) -> String {
    let rest = api_base
        .split_once("://")
        .map_or(api_base, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA private key, ready to sign. `Debug` never shows it.
pub struct SigningKey {
    pair: RsaKeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("bits", &(self.pair.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA
    /// PRIVATE KEY`). The error says what the text is instead, never what it contains.
    pub fn from_pem(text: &str) -> std::result::Result<SigningKey, String> {
        let blocks = pem_blocks(text)?;
        let mut found = Vec::new();
        for (label, der) in &blocks {
            let pair = match label.as_str() {
                "PRIVATE KEY" => RsaKeyPair::from_pkcs8(der),
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(der),
                _ => {
                    found.push(label.as_str());
                    continue;
                }
            };
            return pair
                .map(|pair| SigningKey { pair })
                .map_err(|e| format!("not a usable RSA private key ({label}: {e})"));
        }
        Err(match found.first() {
            None => "no PEM block (expected -----BEGIN PRIVATE KEY----- or \
                     -----BEGIN RSA PRIVATE KEY-----)"
                .into(),
            Some(&"ENCRYPTED PRIVATE KEY") => {
                "the key is encrypted: store it decrypted (openssl pkey -in KEY -out KEY.pem) \
                 and protect it with chmod 600"
                    .into()
            }
            Some(l) if l.contains("PUBLIC KEY") => {
                "this is a public key: pass the private key (the public one goes to the Coze \
                 console)"
                    .into()
            }
            Some(l) => format!("a {l} is not an RSA private key"),
        })
    }

    /// Reads and parses the key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let text = read_private_file(path, "key file")?;
        SigningKey::from_pem(&text).map_err(|why| Error::Auth(format!("{}: {why}", path.display())))
    }

    /// The public key as PKCS#1 `RSAPublicKey` DER (what ring verifies with).
    pub fn public_key_der(&self) -> &[u8] {
        self.pair.public().as_ref()
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (deterministic).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
            .map_err(|_| Error::Auth("signing the JWT failed".into()))?;
        Ok(sig)
    }
}

/// The PEM blocks of `text` as (label, DER). Header lines (`Proc-Type: 4,ENCRYPTED`,
/// RFC 1421) mark an encrypted PKCS#1 key, which is reported as encrypted.
fn pem_blocks(text: &str) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                if line.to_ascii_uppercase().contains("ENCRYPTED") {
                    blocks.push(("ENCRYPTED PRIVATE KEY".to_owned(), Vec::new()));
                    closed = true;
                    break;
                }
                continue;
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!("the {label} block has no END line"));
        }
        if blocks
            .last()
            .is_some_and(|(l, _)| l == "ENCRYPTED PRIVATE KEY")
        {
            continue;
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("the {label} block is not valid base64"))?;
        blocks.push((label.to_owned(), der));
    }
    Ok(blocks)
}

/// `header.claims.signature`, each part base64url without padding.
pub fn encode(header: &Header, claims: &Claims, key: &SigningKey) -> Result<String> {
    let signing_input = format!("{}.{}", json_part(header), json_part(claims));
    let sig = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64url(&sig)))
}

fn json_part(v: &impl Serialize) -> String {
    b64url(&serde_json::to_vec(v).expect("JWT header and claims always serialize"))
}

/// How to mint a token for a service app; a `grant: "jwt"` token record carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtGrant {
    /// The service app's client id: the JWT's `iss`.
    pub client_id: String,
    /// The private key's PEM file. Absolute, so a cron job in another directory finds it.
    pub key_file: PathBuf,
    /// The public key's id: the JWT header's `kid`.
    pub kid: String,
    /// `duration_seconds` asked for each token. Defaults to [`DEFAULT_TTL`]; at most
    /// [`MAX_TTL`].
    pub ttl: u32,
    /// The JWT's `session_name` claim, when one was asked for (`--session-name`).
    pub session_name: Option<String>,
}

impl JwtGrant {
    /// The grant a token record was minted with; None when it is not a JWT token.
    pub fn from_token(t: &Token) -> Option<Result<JwtGrant>> {
        if t.extra.get("grant").and_then(Value::as_str) != Some(GRANT) {
            return None;
        }
        let text = |k: &str| t.extra.get(k).and_then(Value::as_str).map(str::to_owned);
        let broken = |what: &str| {
            Error::Auth(format!(
                "the JWT token record has no {what}, so no new token can be minted: \
                 run `coze-token --jwt ... --save` again"
            ))
        };
        Some((|| {
            Ok(JwtGrant {
                client_id: t.client_id.clone().ok_or_else(|| broken("client_id"))?,
                key_file: text("key_file")
                    .map(PathBuf::from)
                    .ok_or_else(|| broken("key_file"))?,
                kid: text("kid").ok_or_else(|| broken("kid"))?,
                ttl: t
                    .extra
                    .get("ttl")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_TTL, |n| n.clamp(1, u64::from(MAX_TTL)) as u32),
                session_name: text("session_name"),
            })
        })())
    }

    /// Writes what the next mint needs into a token record's fields (never the key).
    pub fn record_into(&self, extra: &mut Extra) {
        extra.insert("grant".into(), GRANT.into());
        extra.insert(
            "key_file".into(),
            self.key_file.to_string_lossy().into_owned().into(),
        );
        extra.insert("kid".into(), self.kid.clone().into());
        extra.insert("ttl".into(), self.ttl.into());
        match &self.session_name {
            Some(s) => extra.insert("session_name".into(), s.clone().into()),
            None => extra.remove("session_name"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const PKCS8: &str = include_str!("../../tests/data/jwt-test-key.pem");
    const PKCS1: &str = include_str!("../../tests/data/jwt-test-key-rsa.pem");
    const PUBLIC: &str = include_str!("../../tests/data/jwt-test-key.pub.pem");
    const KNOWN_ANSWER: &str = include_str!("../../tests/data/jwt-test-known-answer.txt");

    fn fixed_claims() -> Claims {
        Claims {
            iss: "1234567890.app.coze".into(),
            aud: "api.coze.cn".into(),
            iat: 1_700_000_000,
            exp: 1_700_003_600,
            jti: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".into(),
            session_name: Some("user-42".into()),
        }
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn known_answer_from_openssl_for_both_key_formats() {
        for pem in [PKCS8, PKCS1] {
            let key = SigningKey::from_pem(pem).unwrap();
            let jwt = encode(&Header::rs256("test-kid-1"), &fixed_claims(), &key).unwrap();
            assert_eq!(jwt, KNOWN_ANSWER.trim());
        }
    }

    #[test]
    fn the_signature_verifies_with_the_public_key_and_not_after_tampering() {
        let key = SigningKey::from_pem(PKCS8).unwrap();
        let jwt = encode(&Header::rs256("k"), &fixed_claims(), &key).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key_der());
        public.verify(input.as_bytes(), &sig).unwrap();
        let tampered = input.replacen('e', "f", 1);
        assert!(public.verify(tampered.as_bytes(), &sig).is_err());
        // The committed public key (SPKI) ends with the same RSAPublicKey DER.
        let spki = &pem_blocks(PUBLIC).unwrap()[0].1;
        assert!(spki.ends_with(key.public_key_der()));
    }

    #[test]
    fn parts_are_base64url_without_padding_and_carry_the_claims() {
        let key = SigningKey::from_pem(PKCS1).unwrap();
        let claims = Claims::new("9.app.coze", "127.0.0.1:8080", 1_800_000_000, None).unwrap();
        let jwt = encode(&Header::rs256("kid-9"), &claims, &key).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        for p in &parts {
            assert!(
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{p}"
            );
        }
        assert_eq!(
            decode_part(parts[0]),
            serde_json::json!({"alg":"RS256","typ":"JWT","kid":"kid-9"})
        );
        let c = decode_part(parts[1]);
        assert_eq!(c["iss"], "9.app.coze");
        assert_eq!(c["aud"], "127.0.0.1:8080");
        assert_eq!(c["iat"], 1_800_000_000);
        assert_eq!(c["exp"], 1_800_000_000 + JWT_LIFETIME);
        assert!(c.get("session_name").is_none(), "{c}");
        let jti = c["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 64);
        assert_ne!(jti, claims_jti_again());
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 256);
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
    }

    fn claims_jti_again() -> String {
        Claims::new("c", "a", 0, None).unwrap().jti
    }

    #[test]
    fn audience_is_the_netloc() {
        assert_eq!(audience("https://api.coze.cn"), "api.coze.cn");
        assert_eq!(audience("https://api.coze.com/"), "api.coze.com");
        assert_eq!(audience("http://127.0.0.1:5000/x?y"), "127.0.0.1:5000");
        assert_eq!(audience("api.example"), "api.example");
    }

    #[test]
    fn pem_errors_say_what_the_text_is() {
        assert!(SigningKey::from_pem("hello")
            .unwrap_err()
            .contains("no PEM block"));
        let e = SigningKey::from_pem(PUBLIC).unwrap_err();
        assert!(e.contains("public key"), "{e}");
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(enc).unwrap_err().contains("encrypted"));
        let enc8 =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(enc8)
            .unwrap_err()
            .contains("encrypted"));
        let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(bad)
            .unwrap_err()
            .contains("not a usable RSA"));
        let open = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
        assert!(SigningKey::from_pem(open)
            .unwrap_err()
            .contains("no END line"));
        // A public key before the private one (some tools write both) is skipped.
        let both = format!("{PUBLIC}{PKCS8}");
        assert!(SigningKey::from_pem(&both).is_ok());
        let dbg = format!("{:?}", SigningKey::from_pem(PKCS8).unwrap());
        assert_eq!(dbg, "SigningKey { bits: 2048, .. }");
    }

    #[test]
    fn a_grant_round_trips_through_a_token_record() {
        let grant = JwtGrant {
            client_id: "7.app.coze".into(),
            key_file: "/etc/coze/key.pem".into(),
            kid: "kid-7".into(),
            ttl: 3600,
            session_name: Some("cron".into()),
        };
        let mut t = Token {
            access_token: "czs_x".into(),
            token_type: "Bearer".into(),
            expires_at: 1,
            refresh_token: None,
            client_id: Some("7.app.coze".into()),
            base_url: None,
            extra: Extra::new(),
        };
        assert!(JwtGrant::from_token(&t).is_none());
        grant.record_into(&mut t.extra);
        assert_eq!(JwtGrant::from_token(&t).unwrap().unwrap(), grant);
        t.extra.remove("kid");
        let e = JwtGrant::from_token(&t).unwrap().unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("no kid"), "{e}");
    }
}
