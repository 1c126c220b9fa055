//! Random ids straight from the OS (`getrandom`); no user-space generator is seeded.
//! Secrets with a format of their own (PKCE verifiers, the OAuth state) are made in
//! `pkce`.

/// `bytes` random bytes as lowercase hex (`2 * bytes` characters), for ids such as
/// a session name or a JWT `jti`.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw)?;
    let mut out = String::with_capacity(bytes.saturating_mul(2));
    for b in raw {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_lengths_and_digits() {
        assert_eq!(random_hex(0).unwrap(), "");
        let h = random_hex(16).unwrap();
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(h, random_hex(16).unwrap());
        assert_eq!(random_hex(1000).unwrap().len(), 2000);
    }
}
