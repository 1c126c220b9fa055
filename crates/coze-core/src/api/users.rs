//! The user the token belongs to (`GET /v1/users/me`): the doctor's live check.

use serde_json::Value;

use super::client::Client;
use crate::error::Result;

impl Client<'_> {
    pub fn users_me(&self) -> Result<Value> {
        let url = self.url("/v1/users/me", &[]);
        Ok(Self::data(self.call("GET", &url, None, false)?))
    }
}
