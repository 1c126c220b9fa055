//! Which certificate authorities the tools trust: the machine's, as curl and Python do.
//!
//! The sources, all added together (a CA you add never takes the system's away):
//! - the system store: the first CA bundle found among the places distributions keep
//!   one (`/etc/ssl/certs/ca-certificates.crt` on Debian and Ubuntu, which
//!   `update-ca-certificates` rebuilds; Fedora's, openSUSE's, Alpine's ...); only when
//!   none exists, the Mozilla roots compiled into the binary;
//! - `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (directories of PEM files,
//!   `:`-separated), the variables OpenSSL and therefore curl and Python read;
//! - `--cacert FILE`, or `COZE_CA_BUNDLE`, for one tool run or one environment.
//!
//! A TLS-inspecting company proxy signs every site with its own CA: adding that CA
//! through any of these is what makes the tools work behind it. A file named by
//! `--cacert`/`COZE_CA_BUNDLE` that cannot be read or holds no certificate is an error
//! (the user asked for it); an unreadable `SSL_CERT_FILE`/`SSL_CERT_DIR`, set for every
//! program on the machine, is a warning.
//!
//! Loading reads files, so [`TrustSettings::load`] runs once, on the first HTTPS
//! request (`http`), not at start-up. Not here: the TLS handshake (ureq and rustls) or
//! telling a certificate error apart (`failure`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem};

use crate::error::{Error, Result};

/// Where distributions keep their CA bundle, in the order Go's crypto/x509 checks them;
/// the first that exists is the system store.
pub const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// What the user and the machine say about trust, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSettings {
    /// `--cacert FILE` or `COZE_CA_BUNDLE`, and which of the two named it.
    pub extra: Option<(PathBuf, &'static str)>,
    /// `SSL_CERT_FILE`.
    pub ssl_cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: directories separated by `:`.
    pub ssl_cert_dir: Option<String>,
    /// The candidates for the system store: [`SYSTEM_BUNDLES`], or a test's own.
    pub system_bundles: Vec<PathBuf>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            extra: None,
            ssl_cert_file: None,
            ssl_cert_dir: None,
            system_bundles: SYSTEM_BUNDLES.iter().map(PathBuf::from).collect(),
        }
    }
}

/// One place certificates came from, for messages and `coze-auth doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `the system store /etc/ssl/certs/ca-certificates.crt`, `SSL_CERT_FILE /x.pem`.
    pub label: String,
    /// How many CA certificates it gave.
    pub certificates: usize,
    /// Why it gave nothing, when it was set but unusable.
    pub problem: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Some(p) => write!(f, "{} ({p})", self.label),
            None if self.certificates == 0 => write!(f, "{}", self.label),
            None if self.certificates == 1 => write!(f, "{} (1 certificate)", self.label),
            None => write!(f, "{} ({} certificates)", self.label, self.certificates),
        }
    }
}

/// The certificates to trust, and where each batch came from.
#[derive(Clone)]
pub struct Trust {
    /// Every trusted CA certificate, in DER. Empty when only the compiled-in roots apply.
    pub certificates: Vec<Certificate<'static>>,
    /// No system store was found and nothing else was given: Mozilla's roots, compiled in.
    pub builtin: bool,
    /// Each place read, in the order read, with what it gave or why it gave nothing.
    pub sources: Vec<Source>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("certificates", &self.certificates.len())
            .field("builtin", &self.builtin)
            .field("sources", &self.sources)
            .finish()
    }
}

impl Trust {
    /// The sources on one line: `the system store /etc/… (146 certificates), --cacert
    /// corp.pem (1 certificate)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.sources.iter().map(Source::to_string).collect();
        if self.builtin {
            parts.push("the Mozilla roots built into this program".into());
        }
        parts.join(", ")
    }

    /// What ureq is to trust.
    pub fn root_certs(&self) -> ureq::tls::RootCerts {
        if self.builtin {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::new_with_certs(&self.certificates)
        }
    }
}

/// How to make the tools trust one more CA: the advice every certificate error ends with.
pub const ADD_A_CA: &str = "to trust another CA (a company proxy's), pass --cacert FILE \
     or set COZE_CA_BUNDLE=FILE (or SSL_CERT_FILE)";

impl TrustSettings {
    /// Reads every source. `warn` receives one line per set-but-unusable system-wide
    /// variable; an unusable `--cacert`/`COZE_CA_BUNDLE` is an error (exit 2).
    pub fn load(&self, warn: &mut dyn FnMut(&str)) -> Result<Trust> {
        let mut certificates = Vec::new();
        let mut sources = Vec::new();
        let system = self.system_bundles.iter().find(|p| p.is_file());
        if let Some(path) = system {
            let label = format!("the system store {}", path.display());
            sources.push(read_into(
                &mut certificates,
                label,
                std::slice::from_ref(path),
            ));
        }
        if let Some(path) = &self.ssl_cert_file {
            if system.is_some_and(|sys| same_file(sys, path)) {
                // Often set to the system bundle itself (for programs that do not find
                // it alone): read once.
                sources.push(Source {
                    label: format!("SSL_CERT_FILE {} (the system store)", path.display()),
                    certificates: 0,
                    problem: None,
                });
            } else {
                let label = format!("SSL_CERT_FILE {}", path.display());
                let source = read_into(&mut certificates, label, std::slice::from_ref(path));
                if let Some(problem) = &source.problem {
                    warn(&format!("SSL_CERT_FILE={}: {problem}", path.display()));
                }
                sources.push(source);
            }
        }
        if let Some(dirs) = self.ssl_cert_dir.as_deref() {
            for dir in dirs.split(':').filter(|d| !d.is_empty()) {
                let label = format!("SSL_CERT_DIR {dir}");
                let source = match files_in(Path::new(dir)) {
                    Ok(files) => read_into(&mut certificates, label, &files),
                    Err(problem) => Source {
                        label,
                        certificates: 0,
                        problem: Some(problem),
                    },
                };
                if let Some(problem) = &source.problem {
                    warn(&format!("SSL_CERT_DIR {dir}: {problem}"));
                }
                sources.push(source);
            }
        }
        if let Some((path, from)) = &self.extra {
            let label = format!("{from} {}", path.display());
            let source = read_into(&mut certificates, label, std::slice::from_ref(path));
            if let Some(problem) = &source.problem {
                return Err(Error::usage(format!(
                    "{from} {}: {problem}",
                    path.display()
                )));
            }
            sources.push(source);
        }
        // The same CA often comes from several sources (Debian's bundle and its
        // /etc/ssl/certs links): each is given to rustls once.
        let mut seen = std::collections::HashSet::new();
        certificates.retain(|c| seen.insert(c.der().to_vec()));
        // Without a system store, the compiled-in roots stand in for it, as long as nothing
        // else was given: ureq takes either its own roots or ours, not both.
        let builtin = system.is_none() && certificates.is_empty();
        if system.is_none() && !builtin {
            sources.insert(
                0,
                Source {
                    label: "no system store".into(),
                    certificates: 0,
                    problem: Some(format!(
                        "none of {} exists",
                        self.system_bundles
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                },
            );
        }
        Ok(Trust {
            certificates,
            builtin,
            sources,
        })
    }
}

/// The certificate files of a directory, sorted so the order is stable: the files
/// OpenSSL would look up, named `<8 hex digits>.<n>` (the links `c_rehash` and
/// `update-ca-certificates` make); a directory with none of those (certificates dropped
/// in by hand) has all its regular files read. Symlinks are followed.
fn files_in(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read it: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    let hashed = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('.'))
            .is_some_and(|(h, n)| {
                h.len() == 8
                    && h.bytes().all(|b| b.is_ascii_hexdigit())
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
    };
    if files.iter().any(hashed) {
        files.retain(hashed);
    }
    files.sort();
    Ok(files)
}

/// Whether two paths name the same file (symlinks followed).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Appends the PEM certificates of `files` to `into`; the source says how many, or what
/// went wrong when none could be had.
fn read_into(into: &mut Vec<Certificate<'static>>, label: String, files: &[PathBuf]) -> Source {
    let mut count = 0;
    let mut problem = None;
    for file in files {
        // A system bundle is a few hundred KiB; 64 MiB is no bundle (`/dev/zero`).
        match fs::File::open(file).and_then(|f| crate::wire::jsonl::read_capped(f, 64 << 20)) {
            Ok(bytes) => {
                for item in ureq::tls::parse_pem(&bytes).flatten() {
                    if let PemItem::Certificate(c) = item {
                        into.push(c);
                        count += 1;
                    }
                }
            }
            Err(e) if files.len() == 1 => problem = Some(format!("cannot read it: {e}")),
            Err(e) => problem = Some(format!("cannot read {}: {e}", file.display())),
        }
    }
    if count == 0 && problem.is_none() {
        problem = Some(if files.len() == 1 {
            "no PEM certificate in it".to_owned()
        } else {
            "no PEM certificate found".to_owned()
        });
    }
    Source {
        label,
        certificates: count,
        problem: if count == 0 { problem } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid PEM block (the DER is not checked at load time; rustls
    /// parses it when the first connection is made).
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("coze-tls-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn settings(system: &[&Path]) -> TrustSettings {
        TrustSettings {
            system_bundles: system.iter().map(|p| p.to_path_buf()).collect(),
            ..TrustSettings::default()
        }
    }

    #[test]
    fn every_source_adds_up() {
        let d = dir("sum");
        fs::write(d.join("system.pem"), format!("{PEM}{PEM}")).unwrap();
        fs::write(d.join("file.pem"), PEM).unwrap();
        fs::create_dir(d.join("certs")).unwrap();
        fs::write(d.join("certs/a.0"), PEM).unwrap();
        fs::write(d.join("certs/readme.txt"), "not a certificate").unwrap();
        fs::write(d.join("corp.pem"), PEM).unwrap();
        let mut s = settings(&[&d.join("missing.pem"), &d.join("system.pem")]);
        s.ssl_cert_file = Some(d.join("file.pem"));
        s.ssl_cert_dir = Some(format!("{}:", d.join("certs").display()));
        s.extra = Some((d.join("corp.pem"), "--cacert"));
        let mut warnings = Vec::new();
        let t = s.load(&mut |w| warnings.push(w.to_owned())).unwrap();
        // Five PEM blocks, one certificate: each CA reaches rustls once.
        assert_eq!(t.certificates.len(), 1);
        assert!(!t.builtin);
        assert!(warnings.is_empty(), "{warnings:?}");
        let text = t.describe();
        assert!(
            text.starts_with(&format!(
                "the system store {} (2 certificates), SSL_CERT_FILE",
                d.join("system.pem").display()
            )),
            "{text}"
        );
        assert!(text.ends_with("corp.pem (1 certificate)"), "{text}");
        // SSL_CERT_FILE naming the system bundle is read once.
        let mut s = settings(&[&d.join("system.pem")]);
        s.ssl_cert_file = Some(d.join("system.pem"));
        let t = s.load(&mut |_| {}).unwrap();
        assert!(
            t.describe().ends_with(
                "SSL_CERT_FILE {} (the system store)"
                    .replace("{}", &d.join("system.pem").display().to_string())
                    .as_str()
            ),
            "{t:?}"
        );
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_hashed_directory_is_read_as_openssl_looks_it_up() {
        let d = dir("hashed");
        fs::write(d.join("5ed36f99.0"), PEM).unwrap();
        fs::write(
            d.join("corp.pem"),
            "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let files = files_in(&d).unwrap();
        assert_eq!(files, [d.join("5ed36f99.0")], "only the lookup names");
        fs::remove_file(d.join("5ed36f99.0")).unwrap();
        assert_eq!(
            files_in(&d).unwrap(),
            [d.join("corp.pem")],
            "else every file"
        );
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn without_a_system_store_the_built_in_roots_apply_unless_a_ca_is_given() {
        let d = dir("builtin");
        let s = settings(&[&d.join("none.pem")]);
        let t = s.load(&mut |_| {}).unwrap();
        assert!(t.builtin);
        assert_eq!(t.describe(), "the Mozilla roots built into this program");
        fs::write(d.join("corp.pem"), PEM).unwrap();
        let mut s = s.clone();
        s.extra = Some((d.join("corp.pem"), "COZE_CA_BUNDLE"));
        let t = s.load(&mut |_| {}).unwrap();
        assert!(!t.builtin);
        assert!(
            t.describe().starts_with("no system store (none of "),
            "{t:?}"
        );
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_bad_cacert_is_an_error_and_a_bad_ssl_cert_file_a_warning() {
        let d = dir("bad");
        fs::write(d.join("empty.pem"), "nothing here").unwrap();
        let mut s = settings(&[]);
        s.extra = Some((d.join("nope.pem"), "--cacert"));
        let e = s.load(&mut |_| {}).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--cacert "), "{e}");
        assert!(e.to_string().contains("cannot read"), "{e}");
        s.extra = Some((d.join("empty.pem"), "COZE_CA_BUNDLE"));
        let e = s.load(&mut |_| {}).unwrap_err();
        assert!(e.to_string().ends_with("no PEM certificate in it"), "{e}");
        let mut s = settings(&[]);
        s.ssl_cert_file = Some(d.join("nope.pem"));
        s.ssl_cert_dir = Some(d.join("no-dir").display().to_string());
        let mut warnings = Vec::new();
        let t = s.load(&mut |w| warnings.push(w.to_owned())).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("SSL_CERT_FILE="), "{warnings:?}");
        assert!(t.builtin, "nothing usable was added");
        let _ = fs::remove_dir_all(d);
    }
}
