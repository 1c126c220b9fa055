//! Where settings come from, resolved once: flags beat environment, environment beats
//! the token file, which beats defaults (docs/architecture.md, "Conventions"). Each rule
//! is written once and returns the value with where it came from.
//!
//! `env`: the one snapshot of the environment ([`Env`], taken in `main`); `profiles`:
//! the settings directory and its profiles; `credentials`: which token an API tool
//! uses; `settings`: the API base, the region, the web host, the client id, the bot,
//! the CAs, plain http; `user_id`: the profile's stable user id.

mod credentials;
mod env;
mod profiles;
mod settings;
pub mod user_id;

pub use credentials::{credentials, token_file, Credentials, Origin, CREDENTIALS_PRECEDENCE};
pub use env::{proxy_candidates, Env, NO_PROXY_VARS, PROXY_VARS};
pub use profiles::{
    check_profile_name, config_dir, default_token_path, profile_dir, selected_profile,
    DEFAULT_PROFILE,
};
pub use settings::{
    allow_http, api_base, bot_id, ca_bundle, client_id, plain_http, region_hint, token_allows_http,
    www_base, Region, Setting, Source, CN_API, CN_WWW, COM_API, COM_WWW,
};
