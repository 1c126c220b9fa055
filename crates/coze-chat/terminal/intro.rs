//! What the bot says before the first prompt: its name, its prologue (开场白) and its
//! suggested questions, read from its published configuration (`GET /v1/bots/{id}`,
//! the Coze API docs' `get_metadata_draft_published`: `name`,
//! `onboarding_info.prologue`, `onboarding_info.suggested_questions`). Not having them
//! is no failure: a token without the permission, a bot id the server does not know, a
//! server without the endpoint each leave one dim line, and the chat goes on.

use serde_json::Value;

use coze_core::api::Client;
use coze_core::Error;

/// A bot's introduction.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Intro {
    pub name: String,
    pub prologue: String,
    pub questions: Vec<String>,
}

impl Intro {
    /// The introduction in a bot's configuration (`BotInfo`): blank parts are left out.
    pub fn from_info(info: &Value) -> Intro {
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let onboarding = info.get("onboarding_info");
        let questions = onboarding
            .and_then(|o| o.get("suggested_questions"))
            .and_then(Value::as_array)
            .map(|qs| {
                qs.iter()
                    // A question is a string; an object's `content` is taken too.
                    .map(|q| text(Some(q).filter(|q| q.is_string()).or(q.get("content"))))
                    .filter(|q| !q.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Intro {
            name: text(info.get("name")),
            prologue: text(onboarding.and_then(|o| o.get("prologue"))),
            questions,
        }
    }
}

/// The introduction of bot `bot`, or why there is none: `Err` is an authentication
/// failure (the session cannot go on either), `Ok(Err(why))` the words of the one dim
/// line that says it is skipped.
pub fn fetch(client: &Client<'_>, bot: &str) -> Result<Result<Intro, String>, Error> {
    match client.bot(bot, false) {
        Ok(info) => Ok(Ok(Intro::from_info(&info))),
        // A token refused outright fails every chat too; one that lacks this
        // permission (4101) may still chat.
        Err(e) if e.exit_code() == coze_core::error::exit::AUTH && !lacks_permission(&e) => Err(e),
        Err(e) => Ok(Err(why_not(&e))),
    }
}

/// 4101: the token is good but may not do this.
fn lacks_permission(e: &Error) -> bool {
    e.api().and_then(|a| a.coze_code()) == Some(4101)
}

/// Why the bot's introduction is not shown, in a few words.
fn why_not(e: &Error) -> String {
    let api = e.api();
    let reason = match api {
        Some(a) if a.is_missing_endpoint() => "this server does not offer a bot's settings".into(),
        Some(_) if lacks_permission(e) => {
            "the token may not read the bot's settings (its permissions)".into()
        }
        Some(a) if a.msg.trim().is_empty() => format!("the server said no (HTTP {})", a.status),
        Some(a) => a.msg.trim().to_owned(),
        None => e.to_string(),
    };
    format!("(no introduction: {reason})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_parts_of_a_bot_s_configuration() {
        let info = json!({
            "bot_id": "7", "name": " Travel helper ",
            "onboarding_info": {
                "prologue": "Hi!\n",
                "suggested_questions": ["Where?", "", {"content": "When?"}, 3, "  "],
            },
        });
        assert_eq!(
            Intro::from_info(&info),
            Intro {
                name: "Travel helper".into(),
                prologue: "Hi!".into(),
                questions: vec!["Where?".into(), "When?".into()],
            }
        );
        assert_eq!(Intro::from_info(&json!({})), Intro::default());
        assert_eq!(
            Intro::from_info(&json!({"onboarding_info": null, "name": 5})),
            Intro::default()
        );
    }
}
