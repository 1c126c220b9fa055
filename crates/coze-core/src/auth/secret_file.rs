//! Files that hold a secret (a private key, a client secret) and the token file's size
//! limit: a file group or others may read or write is refused, as ssh refuses a loose
//! key, and no such file is read past [`MAX_SECRET_FILE`].

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::support::redact;

/// The largest token file, key file or client secret file read: a token record is
/// under 4 KiB and a private key a few KiB, so a larger file is not one (and
/// `--token-file /dev/zero` must not be read until memory runs out).
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// Reads a file that holds a secret (a private key, a client secret), refusing it when
/// group or others may read or write it: `what` names it in the message ("key file").
/// The mode is checked on the open file, so it is the file that is then read.
pub fn read_private_file(path: &Path, what: &str) -> Result<String> {
    let mut file =
        File::open(path).map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?;
    let mode = file
        .metadata()
        .map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let who = if mode & 0o044 != 0 {
            "readable"
        } else {
            "accessible"
        };
        return Err(Error::Auth(format!(
            "{what} {p} is {who} by others (mode {m:04o}): chmod 600 {p}",
            p = path.display(),
            m = mode & 0o7777
        )));
    }
    let bytes = crate::wire::jsonl::read_capped(&mut file, MAX_SECRET_FILE)
        .map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?;
    String::from_utf8(bytes).map_err(|_| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8");
        Error::io(path, e).context(format!("reading the {what}"))
    })
}

/// Reads a web app's client secret from `path` (mode 0600 or stricter, as for keys).
pub fn read_client_secret(path: &Path) -> Result<String> {
    let text = read_private_file(path, "client secret file")?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Auth(format!(
            "client secret file {} is empty",
            path.display()
        )));
    }
    redact::register(secret);
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::tmpdir;
    use std::fs;

    #[test]
    fn private_files_must_not_be_open_to_others() {
        let dir = tmpdir("private");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        fs::write(&path, "secret\n").unwrap();
        for (mode, who) in [
            (0o644, "readable"),
            (0o640, "readable"),
            (0o620, "accessible"),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = read_private_file(&path, "key file").unwrap_err();
            assert_eq!(e.exit_code(), 4);
            let p = path.display();
            assert_eq!(
                e.to_string(),
                format!("key file {p} is {who} by others (mode {mode:04o}): chmod 600 {p}")
            );
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private_file(&path, "key file").unwrap(), "secret\n");
        }
        let e = read_private_file(&dir.join("none"), "key file").unwrap_err();
        assert!(e.to_string().starts_with("reading the key file: "), "{e}");
        let _ = fs::remove_dir_all(dir);
    }
}
