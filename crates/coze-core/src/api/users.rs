//! The user the token belongs to (`GET /v1/users/me`): the doctor's live check.

use serde_json::Value;

use super::client::Client;
use crate::error::Result;

impl Client<'_> {
    /// The token's user (`user_id`, `user_name`, `nick_name`, `avatar_url`). A
    /// self-hosted Coze Studio lacks this endpoint: the error says so (exit 1).
    pub fn users_me(&self) -> Result<Value> {
        let url = self.url("/v1/users/me", &[]);
        Ok(Self::data(self.call("GET", &url, None, false)?))
    }
}
