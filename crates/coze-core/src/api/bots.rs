//! Bots and workspaces: one bot's configuration (`GET /v1/bots/{bot_id}`, the Coze
//! API docs' `get_metadata_draft_published`), the bots of a workspace (`GET /v1/bots`,
//! `bots_list_draft_published`) and the workspaces the token sees (`GET /v1/workspaces`,
//! `list_workspace`). Both lists page by number and say how many there are in all
//! (`total`, `total_count`), never `has_more`: the page here works it out. A
//! self-hosted Coze Studio serves the first and lacks the lists (the error says so).

use serde_json::Value;

use super::client::{Client, Page};
use crate::error::{Error, Result};
use crate::support::url;

/// Which of a workspace's bots to list (`publish_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Bots published to the API channel (`published_online`, the server's default).
    Published,
    /// Bots never published, and published bots' unpublished changes
    /// (`unpublished_draft`).
    Draft,
    /// Every bot (`all`).
    All,
}

impl Publish {
    /// The API's name for it.
    pub fn as_query(self) -> &'static str {
        match self {
            Publish::Published => "published_online",
            Publish::Draft => "unpublished_draft",
            Publish::All => "all",
        }
    }
}

impl Client<'_> {
    /// One bot's whole configuration (`BotInfo`: name, prologue and suggested questions
    /// under `onboarding_info`, model, plugins, workflows, shortcut commands): the
    /// published version, or with `draft` the one being edited.
    pub fn bot(&self, bot_id: &str, draft: bool) -> Result<Value> {
        let id = url::path_segment(bot_id).ok_or_else(|| {
            Error::usage(format!(
                "{bot_id:?} is not a bot id (it cannot be part of a URL path)"
            ))
        })?;
        let published = if draft { "false" } else { "true" };
        let url = self.url(&format!("/v1/bots/{id}"), &[("is_published", published)]);
        Ok(Self::data(self.call("GET", &url, None, false)?))
    }

    /// One page of a workspace's bots (page numbers from 1; `page_size` at most 50).
    /// The API names the page `page_num` (its docs and coze-js; coze-py's `page_index`
    /// disagrees).
    pub fn list_bots(
        &self,
        workspace_id: &str,
        status: Publish,
        page_num: u32,
        page_size: u32,
    ) -> Result<Page> {
        let (num, size) = (page_num.to_string(), page_size.to_string());
        let url = self.url(
            "/v1/bots",
            &[
                ("workspace_id", workspace_id),
                ("publish_status", status.as_query()),
                ("page_num", &num),
                ("page_size", &size),
            ],
        );
        let data = Self::data(self.call("GET", &url, None, false)?);
        Ok(numbered_page(&data, "items", "total", page_num, page_size))
    }

    /// One page of the workspaces the token sees (page numbers from 1; `page_size` at
    /// most 50).
    pub fn list_workspaces(&self, page_num: u32, page_size: u32) -> Result<Page> {
        let (num, size) = (page_num.to_string(), page_size.to_string());
        let url = self.url(
            "/v1/workspaces",
            &[("page_num", &num), ("page_size", &size)],
        );
        let data = Self::data(self.call("GET", &url, None, false)?);
        Ok(numbered_page(
            &data,
            "workspaces",
            "total_count",
            page_num,
            page_size,
        ))
    }
}

/// A page of a list that pages on its total: there is more while the pages so far hold
/// fewer than the total and this one was full (coze-py's `NumberPaged` stops on either;
/// a short page ends the list even if the total says otherwise, so a server whose total
/// is wrong cannot make the caller ask for ever).
fn numbered_page(data: &Value, items: &str, total: &str, page_num: u32, page_size: u32) -> Page {
    let items = data
        .get(items)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = data.get(total).and_then(|t| {
        t.as_u64()
            .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
    });
    let seen = u64::from(page_num) * u64::from(page_size);
    let full = items.len() as u64 >= u64::from(page_size) && !items.is_empty();
    Page {
        has_more: full && total.is_some_and(|t| t > seen),
        items,
        ..Page::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(data: Value, num: u32, size: u32) -> Page {
        numbered_page(&data, "items", "total", num, size)
    }

    #[test]
    fn a_full_page_short_of_the_total_has_more() {
        let p = page(json!({"items":[1,2],"total":5}), 1, 2);
        assert_eq!(p.items.len(), 2);
        assert!(p.has_more);
        assert!(page(json!({"items":[1,2],"total":"5"}), 2, 2).has_more);
    }

    #[test]
    fn the_total_reached_or_a_short_page_ends_the_list() {
        assert!(!page(json!({"items":[1,2],"total":4}), 2, 2).has_more);
        // A total that lies cannot keep the caller asking.
        assert!(!page(json!({"items":[1],"total":99}), 1, 2).has_more);
        assert!(!page(json!({"items":[],"total":99}), 1, 0).has_more);
        // No total: the server's word is missing, so a full page is the last one.
        assert!(!page(json!({"items":[1,2]}), 1, 2).has_more);
    }
}
