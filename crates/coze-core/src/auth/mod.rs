//! Layer 5, authentication: getting tokens and keeping them fresh.
//!
//! `oauth` speaks the token endpoint's grants (a code with PKCE, a refresh token, a
//! device code, a service app's JWT), with the JWT signed by `jwt` and the PKCE pair and
//! state made by `pkce`; `callback` reads what a browser login's redirect carries.
//! `store` keeps the token file safe (its lock, atomic writes, symlinks, the room made
//! before a refresh) and knows nothing of grants; `renew` decides what renewing a token
//! means and drives the store; `source` is where the API tools get their bearer.
//! `secret_file` reads the files that hold secrets. The imports run one way:
//! `source` → `renew` → `oauth`, `store` → `jwt`, `secret_file`; `callback` → `pkce`.

pub mod callback;
pub mod jwt;
pub mod oauth;
pub mod pkce;
pub mod renew;
pub mod secret_file;
pub mod source;
pub mod store;
#[cfg(test)]
mod testing;
