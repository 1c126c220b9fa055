//! `object_string` messages (the Coze API docs page `chat_v3`, "object_string object";
//! coze-py `Message.build_user_question_objects` in `cozepy/chat/__init__.py`): a
//! message whose `content` is a JSON string holding an array of objects, each
//! `{"type":"text","text":…}` or `{"type":"file"|"image"|"audio","file_id"|"file_url":…}`.
//! Here: the rules a chat's `additional_messages` must keep, and the attachments the
//! bot then names in its answer.

use serde_json::Value;

/// One attachment as the bot names it: its type and its name (the uploaded file's
/// name, or the `file_url` as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub kind: String,
    pub name: String,
}

/// The sentence appended to the bot's answer when the request carried attachments:
/// ` [attachments: TYPE:NAME, TYPE:NAME]`, in the order of the messages and of the
/// objects within each (documented in `coze-fake --help`).
pub fn note(attachments: &[Attachment]) -> String {
    if attachments.is_empty() {
        return String::new();
    }
    let list: Vec<String> = attachments
        .iter()
        .map(|a| format!("{}:{}", a.kind, a.name))
        .collect();
    format!(" [attachments: {}]", list.join(", "))
}

fn is_object_string(m: &Value) -> bool {
    m.get("content_type").and_then(Value::as_str) == Some("object_string")
}

fn is_text(m: &Value) -> bool {
    matches!(
        m.get("content_type").and_then(Value::as_str),
        None | Some("text")
    )
}

/// Check every object_string message of `messages` and list their attachments;
/// `file_name(id)` is the name of a file the caller may attach (None: it does not
/// exist for this token). Err is the rule broken, for a code 4000 answer.
pub fn check(
    messages: &[Value],
    file_name: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Attachment>, String> {
    let mut found = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if !is_object_string(m) {
            continue;
        }
        let n = i + 1;
        let content = m.get("content").and_then(Value::as_str).unwrap_or("");
        let Ok(Value::Array(objects)) = serde_json::from_str::<Value>(content) else {
            return Err(format!(
                "additional_messages[{i}]: object_string content must be a JSON array of objects"
            ));
        };
        if objects.is_empty() {
            return Err(format!(
                "additional_messages[{i}]: object_string content has no objects"
            ));
        }
        let (mut texts, mut files) = (0, 0);
        for o in &objects {
            let s = |k: &str| o.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
            match s("type") {
                Some("text") => {
                    if s("text").is_none() {
                        return Err(format!(
                            "additional_messages[{i}]: a text object needs a non-empty text"
                        ));
                    }
                    texts += 1;
                }
                Some(kind @ ("file" | "image" | "audio")) => {
                    let name = match (s("file_id"), s("file_url")) {
                        (Some(id), _) => file_name(id).ok_or_else(|| {
                            format!("additional_messages[{i}]: file_id {id} does not exist: upload it first with /v1/files/upload")
                        })?,
                        (None, Some(url)) => url.to_string(),
                        (None, None) => {
                            return Err(format!(
                                "additional_messages[{i}]: a {kind} object needs a file_id or a file_url"
                            ))
                        }
                    };
                    files += 1;
                    found.push(Attachment {
                        kind: kind.to_string(),
                        name,
                    });
                }
                other => {
                    return Err(format!(
                        "additional_messages[{i}]: unknown object type {:?}: want text, file, image or audio",
                        other.unwrap_or("")
                    ))
                }
            }
        }
        if texts > 1 {
            return Err(format!(
                "additional_messages[{i}]: at most one text object per object_string message"
            ));
        }
        if texts == 1 && files == 0 {
            return Err(format!(
                "additional_messages[{i}]: a text object needs at least one file or image object with it"
            ));
        }
        if texts == 0 {
            let neighbour = |j: Option<usize>| j.and_then(|j| messages.get(j)).is_some_and(is_text);
            if !neighbour(i.checked_sub(1)) && !neighbour(Some(n)) {
                return Err(format!(
                    "additional_messages[{i}]: a message of only files or images needs a text message just before or after it"
                ));
            }
        }
    }
    Ok(found)
}

/// The text of an object_string content (its text object's), or None.
pub fn text_of(content: &str) -> Option<String> {
    let Ok(Value::Array(objects)) = serde_json::from_str::<Value>(content) else {
        return None;
    };
    let texts: Vec<&str> = objects
        .iter()
        .filter(|o| o.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|o| o.get("text").and_then(Value::as_str))
        .collect();
    Some(texts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(parts: Value) -> Value {
        json!({"role":"user","content":parts.to_string(),"content_type":"object_string"})
    }

    fn names(id: &str) -> Option<String> {
        (id == "1").then(|| "a.pdf".to_string())
    }

    #[test]
    fn rules() {
        let ok = [obj(
            json!([{"type":"text","text":"hi"},{"type":"file","file_id":"1"},
                              {"type":"image","file_url":"https://x/y.png"}]),
        )];
        let got = check(&ok, &names).unwrap();
        assert_eq!(
            note(&got),
            " [attachments: file:a.pdf, image:https://x/y.png]"
        );
        let text = json!({"role":"user","content":"what?","content_type":"text"});
        let files_only = obj(json!([{"type":"image","file_id":"1"}]));
        assert!(check(&[files_only.clone(), text.clone()], &names).is_ok());
        assert!(check(&[text.clone(), files_only.clone()], &names).is_ok());
        let bad = [
            (vec![files_only.clone()], "just before or after"),
            (
                vec![obj(json!([{"type":"text","text":"a"}]))],
                "at least one file",
            ),
            (
                vec![obj(
                    json!([{"type":"text","text":"a"},{"type":"text","text":"b"},
                                {"type":"file","file_id":"1"}]),
                )],
                "at most one text",
            ),
            (
                vec![obj(json!([{"type":"file","file_id":"2"}])), text.clone()],
                "file_id 2 does not exist",
            ),
            (
                vec![obj(json!([{"type":"file"}])), text.clone()],
                "file_id or a file_url",
            ),
            (
                vec![obj(json!([{"type":"video","file_id":"1"}])), text.clone()],
                "unknown object type",
            ),
            (
                vec![json!({"role":"user","content":"{}","content_type":"object_string"})],
                "JSON array",
            ),
        ];
        for (msgs, says) in bad {
            let e = check(&msgs, &names).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
