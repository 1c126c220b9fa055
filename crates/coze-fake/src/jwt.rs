//! The service-app side of the token endpoint (the Coze API docs, `oauth_jwt`): a JWT
//! arrives as `Authorization: Bearer`, and the fake checks it as Coze would — RS256
//! signature against the public key it was given (`--jwt-public-key`, SPKI PEM), the
//! header (alg, kid), the claims (aud is our own host:port, exp after now and after
//! iat, iat not in the future, a jti never seen before) — naming the failed check in
//! its answer.
//!
//! Written from the spec, not from coze-core's signer, so that a mistake in one is not
//! mirrored in the other: the PEM and DER reading here is the fake's own.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;

/// How far in the future `iat` may be (clock skew between a client and us).
pub const IAT_SKEW_S: i64 = 60;

/// `1.2.840.113549.1.1.1`, rsaEncryption, DER-encoded with its tag and length.
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// A PEM public key (`BEGIN PUBLIC KEY`, SPKI; or `BEGIN RSA PUBLIC KEY`, PKCS#1) as the
/// PKCS#1 `RSAPublicKey` DER that ring verifies with.
pub fn public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or("no PEM block in the public key")?;
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "the public key is not valid base64".to_string())?;
    match label.as_str() {
        "RSA PUBLIC KEY" => Ok(der),
        "PUBLIC KEY" => spki_rsa_key(&der),
        other => Err(format!("expected -----BEGIN PUBLIC KEY-----, got {other}")),
    }
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey
/// BIT STRING }; for RSA the bit string holds the RSAPublicKey (RFC 3279 §2.3.1).
fn spki_rsa_key(der: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |what: &str| format!("the public key is not an RSA SubjectPublicKeyInfo ({what})");
    let (spki, _) = tlv(der, 0x30).ok_or_else(|| bad("outer SEQUENCE"))?;
    let (alg, rest) = tlv(spki, 0x30).ok_or_else(|| bad("algorithm"))?;
    if !alg.starts_with(RSA_ENCRYPTION_OID) {
        return Err(bad("not rsaEncryption"));
    }
    let (bits, _) = tlv(rest, 0x03).ok_or_else(|| bad("BIT STRING"))?;
    match bits.split_first() {
        Some((0, key)) => Ok(key.to_vec()),
        _ => Err(bad("unused bits")),
    }
}

/// One DER element with tag `tag` at the start of `input`: (contents, the rest).
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (&rest[..len], &rest[len..]))
}

/// The checks that do not need the fake's state: `Ok` is the JWT's `jti`, which the
/// caller must not have seen before. `Err` is the message of the `invalid_client`
/// answer, naming the failed check.
pub fn verify(
    jwt: &str,
    public_key: Option<&[u8]>,
    want_kid: Option<&str>,
    audience: &str,
    now: i64,
) -> Result<String, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err("the bearer is not a JWT (expected header.claims.signature)".into());
    };
    let part = |p: &str, what: &str| -> Result<Value, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| format!("jwt {what} is not base64url without padding"))?;
        serde_json::from_slice::<Value>(&raw)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| format!("jwt {what} is not a JSON object"))
    };
    let header = part(h, "header")?;
    let claims = part(c, "claims")?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "jwt signature is not base64url without padding".to_string())?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match text(&header, "alg").as_deref() {
        Some("RS256") => {}
        other => return Err(format!("jwt header alg must be RS256, got {other:?}")),
    }
    let kid = text(&header, "kid").ok_or("jwt header has no kid")?;
    if let Some(want) = want_kid {
        if kid != want {
            return Err(format!(
                "jwt header kid {kid:?} is not this app's public key id"
            ));
        }
    }
    let Some(key) = public_key else {
        return Err(
            "no public key is registered for JWT apps (start coze-fake with --jwt-public-key)"
                .into(),
        );
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "jwt signature does not verify with the app's public key".to_string())?;
    if text(&claims, "iss").is_none_or(|s| s.is_empty()) {
        return Err("jwt claim iss (the app id) is missing".into());
    }
    match text(&claims, "aud") {
        Some(a) if a == audience => {}
        other => {
            return Err(format!(
                "jwt claim aud must be {audience:?} (the API host), got {other:?}"
            ))
        }
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    let iat = num("iat").ok_or("jwt claim iat is missing or not a number")?;
    let exp = num("exp").ok_or("jwt claim exp is missing or not a number")?;
    if exp <= now {
        return Err(format!("jwt expired (exp {exp} is {} s ago)", now - exp));
    }
    if exp <= iat {
        return Err(format!(
            "jwt claim exp ({exp}) must be later than iat ({iat})"
        ));
    }
    if iat > now + IAT_SKEW_S {
        return Err(format!("jwt claim iat is {} s in the future", iat - now));
    }
    text(&claims, "jti")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "jwt claim jti is missing".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long() {
        assert_eq!(
            tlv(&[0x30, 0x01, 0xaa, 0xbb], 0x30),
            Some((&[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x03, 0x82, 0x01, 0x00];
        long.extend(vec![7u8; 256]);
        assert_eq!(tlv(&long, 0x03).unwrap().0.len(), 256);
        assert_eq!(tlv(&[0x30, 0x05, 0x00], 0x30), None, "length past the end");
        assert_eq!(tlv(&[0x02, 0x00], 0x30), None, "wrong tag");
    }

    #[test]
    fn bad_pem_is_named() {
        assert!(public_key_der("nothing").unwrap_err().contains("no PEM"));
        let priv_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(public_key_der(priv_pem).unwrap_err().contains("PUBLIC KEY"));
        let junk = "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n";
        assert!(public_key_der(junk).unwrap_err().contains("algorithm"));
    }

    #[test]
    fn structure_and_header_checks_come_first() {
        let v = |jwt: &str| verify(jwt, None, Some("k1"), "h:1", 100).unwrap_err();
        assert!(v("abc").contains("not a JWT"));
        let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.AA", b(r#"{"alg":"HS256","kid":"k1"}"#), b("{}"));
        assert!(v(&jwt).contains("alg must be RS256"), "{}", v(&jwt));
        let jwt = format!("{}.{}.AA", b(r#"{"alg":"RS256","kid":"k2"}"#), b("{}"));
        assert!(v(&jwt).contains("kid"), "{}", v(&jwt));
        let jwt = format!("{}.{}.AA", b(r#"{"alg":"RS256","kid":"k1"}"#), b("{}"));
        assert!(v(&jwt).contains("--jwt-public-key"), "{}", v(&jwt));
    }
}
