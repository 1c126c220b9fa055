//! Transport failures named the way a person can act on them: the route a request
//! took (a refused or timed-out connection through a proxy is the proxy's answer), a
//! timeout, and a TLS failure, which is `Error::Tls` (never retried: it fails the same
//! way every time) and, for a certificate nobody trusts, lists the trust sources and
//! how to add a CA.

use std::io;

use super::proxy::Route;
use super::tls::{Trust, ADD_A_CA};
use crate::error::Error;
use crate::support::redact;

/// Names a transport failure the way a person can act on it, and the proxy it went
/// through: a refused or timed-out connection is then the proxy's answer. A TLS failure
/// is `Error::Tls` (not retried); a certificate nobody trusts lists the trust sources.
pub fn network_error(
    target: &str,
    err: &ureq::Error,
    route: Option<&Route>,
    trust: Option<&Trust>,
) -> Error {
    let shown = redact::scrub(target);
    let via = route
        .and_then(Route::proxy)
        .map(|p| format!(" (through the proxy {p})"))
        .unwrap_or_default();
    if let Some(tls) = tls_failure(err) {
        let why = match tls {
            rustls::Error::InvalidCertificate(c) => {
                let sources = trust
                    .map(|t| format!("; trusted: {}", t.describe()))
                    .unwrap_or_default();
                format!("the server's certificate is not trusted ({c:?}){sources}; {ADD_A_CA}")
            }
            other => format!("TLS failed: {other}"),
        };
        return Error::Tls(format!("{shown}: {why}{via}"));
    }
    let why = match err {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::Io(e) => describe_io(e),
        other => other.to_string(),
    };
    Error::Network(format!("{shown}: {why}{via}"))
}

/// The rustls error inside a ureq error, if the failure was TLS's.
fn tls_failure(err: &ureq::Error) -> Option<&rustls::Error> {
    match err {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// An io error from a response body, which may wrap a ureq error (timeouts do).
pub fn describe_io(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return match inner {
            ureq::Error::Timeout(t) => format!("timed out ({t})"),
            other => other.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection early".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// Whether a read failed because no byte came for the idle timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        Some(inner) => matches!(inner, ureq::Error::Timeout(_)),
        None => matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ),
    }
}
