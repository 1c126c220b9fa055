//! HTTPS for the fake: the rustls server configuration, built once at start either from
//! the user's PEM files or from a throwaway CA made on the spot (rcgen), and the atomic
//! write of that CA's certificate for clients to trust. Always the ring provider, named
//! explicitly, so nothing depends on a process-wide default another crate may install.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::TlsOptions;

/// What the server needs to speak TLS.
pub(crate) struct Tls {
    pub config: Arc<ServerConfig>,
    /// The generated CA's certificate (PEM); None when serving the user's files.
    pub ca_pem: Option<String>,
}

/// The names the generated certificate is valid for: every way a client on this machine
/// may spell the loopback address the fake listens on.
const NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// Build the server configuration `opts` asks for. Errors are one line naming the file.
pub(crate) fn setup(opts: &TlsOptions) -> io::Result<Tls> {
    let (chain, key, ca_pem, what) = match opts {
        TlsOptions::Files { cert, key } => {
            let what = format!(
                "TLS certificate {} with key {}",
                cert.display(),
                key.display()
            );
            (read_chain(cert)?, read_key(key)?, None, what)
        }
        TlsOptions::Generate { .. } => {
            let (chain, key, ca_pem) = generate()
                .map_err(|e| io::Error::other(format!("generating the TLS certificate: {e}")))?;
            (
                chain,
                key,
                Some(ca_pem),
                "the generated TLS certificate".to_string(),
            )
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => "the key is not the certificate's".into(),
                e => e.to_string(),
            };
            io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {why}"))
        })?;
    // The fake speaks HTTP/1.1 only: a client offering h2 too is told so, one offering
    // only h2 is refused at the handshake instead of being sent what it cannot read.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        ca_pem,
    })
}

fn pem_error(what: &str, path: &Path, e: rustls::pki_types::pem::Error) -> io::Error {
    let msg = match e {
        // "No such file or directory", without pki-types' "I/O error: " in front.
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        e => e.to_string(),
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} {}: {msg}", path.display()),
    )
}

/// Every certificate in the PEM file, leaf first as the file has them.
fn read_chain(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("TLS certificate", path, e))?;
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TLS certificate {}: no PEM certificate (BEGIN CERTIFICATE) in it",
                path.display()
            ),
        ));
    }
    Ok(chain)
}

/// The first private key in the PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TLS key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
                path.display()
            ),
        ),
        e => pem_error("TLS key", path, e),
    })
}

/// A throwaway CA and a server certificate it signs for [`NAMES`]: the chain (leaf, CA),
/// the leaf's key, and the CA's certificate as PEM. The CA's key never leaves memory, so
/// trusting the CA file lets nobody else mint certificates.
fn generate() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String), rcgen::Error>
{
    // Valid from an hour ago (a client's clock may lag) for a year: long enough for any
    // run, short enough for clients that cap certificate lifetimes.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    let not_after = epoch + now + Duration::from_secs(365 * 86_400);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    // A name of its own, so a client trusting several fakes' CAs finds the right one.
    let suffix = crate::util::random_string(8, crate::util::ALNUM);
    ca.distinguished_name = name(&format!("coze-fake throwaway CA {suffix}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(NAMES.map(String::from).to_vec())?;
    leaf.distinguished_name = name("coze-fake");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let ca_pem = ca_cert.pem();
    Ok((
        vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key,
        ca_pem,
    ))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Write `contents` to `path` so that a reader sees the old file or the whole new one,
/// never a part: a temporary file in the same directory, then a rename over `path`.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let fail = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("writing the CA certificate to {}: {e}", path.display()),
        )
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| fail(io::Error::new(io::ErrorKind::InvalidInput, "not a file")))?;
    // Unique per process and per call, so two fakes writing one path never share it.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}
