//! One bot's configuration as a person reads it on a terminal: a label and a value a
//! line, longer values (the prologue, the prompt) on lines of their own under the
//! label, suggested questions numbered. Both servers' shapes are read: coze.cn's
//! `BotInfo` (`plugin_info_list[].api_info_list`, `workflow_info_list[].name`) and a
//! self-hosted Coze Studio's (`plugin_info_list[].api_name`,
//! `workflow_info_list[].workflow_name`, a model without its name). Every value is the
//! server's text, shown with its control characters made visible.

use coze_core::support::say::visible;
use coze_core::support::time::unix_now;
use serde_json::{Map, Value};

use crate::table::cell;

/// The label column's width.
const LABEL: usize = 12;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An id or a name, whether the server wrote it as text or as a number.
fn id(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `name (detail)`, or whichever of them there is.
fn named(name: &str, detail: &str) -> String {
    match (name.is_empty(), detail.is_empty()) {
        (false, false) => format!("{name} ({detail})"),
        (false, true) => name.to_owned(),
        (true, _) => detail.to_owned(),
    }
}

struct Lines(Vec<String>);

impl Lines {
    /// `label  value` on one line (the value made one line).
    fn one(&mut self, label: &str, value: &str) {
        if !value.is_empty() {
            self.0.push(format!("{label:<LABEL$}{}", cell(value)));
        }
    }

    /// `label` then each of `values` on a line of its own, aligned under the first.
    fn many(&mut self, label: &str, values: &[String]) {
        for (i, v) in values.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            self.0.push(format!("{label:<LABEL$}{}", cell(v)));
        }
    }

    /// A text that may run to several lines: under the label, each of its lines
    /// indented, its control characters shown.
    fn text(&mut self, label: &str, value: &str) {
        let value = value.trim_end();
        if value.is_empty() {
            return;
        }
        let shown = visible(value);
        let mut lines = shown.lines();
        if let Some(first) = lines.next() {
            self.0
                .push(format!("{label:<LABEL$}{}", first.replace('\t', " ")));
        }
        for l in lines {
            self.0
                .push(format!("{:LABEL$}{}", "", l.replace('\t', " ")));
        }
    }
}

/// The summary's lines.
pub fn lines(rec: &Map<String, Value>, draft: bool) -> Vec<String> {
    let info = Value::Object(rec.clone());
    let mut out = Lines(Vec::new());
    out.one("name", s(&info, "name"));
    out.one(
        "id",
        &format!(
            "{}{}",
            id(&info, "bot_id"),
            if draft { " (draft)" } else { "" }
        ),
    );
    out.text("description", s(&info, "description"));
    if let Some(m) = info.get("model_info") {
        out.one("model", &named(s(m, "model_name"), &id(m, "model_id")));
    }
    if let Some(o) = info.get("onboarding_info") {
        out.text("prologue", s(o, "prologue"));
        let questions: Vec<String> = list(o, "suggested_questions")
            .iter()
            .filter_map(Value::as_str)
            .enumerate()
            .map(|(i, q)| format!("{}. {q}", i + 1))
            .collect();
        out.many("questions", &questions);
    }
    let plugins: Vec<String> = list(&info, "plugin_info_list")
        .iter()
        .map(|p| {
            let apis: Vec<&str> = list(p, "api_info_list")
                .iter()
                .map(|a| s(a, "name"))
                .filter(|n| !n.is_empty())
                .collect();
            // Studio: one entry per API, named by `api_name`.
            let name = match s(p, "name") {
                "" => id(p, "plugin_id"),
                n => n.to_owned(),
            };
            match (apis.is_empty(), s(p, "api_name")) {
                (false, _) => format!("{name}: {}", apis.join(", ")),
                (true, "") => name,
                (true, api) => format!("{name}: {api}"),
            }
        })
        .collect();
    out.many("plugins", &plugins);
    let workflows: Vec<String> = list(&info, "workflow_info_list")
        .iter()
        .map(|w| {
            let name = match s(w, "name") {
                "" => s(w, "workflow_name"),
                n => n,
            };
            let wid = match id(w, "id") {
                i if i.is_empty() => id(w, "workflow_id"),
                i => i,
            };
            named(name, &wid)
        })
        .collect();
    out.many("workflows", &workflows);
    let knowledge: Vec<String> = info
        .get("knowledge")
        .map(|k| list(k, "knowledge_infos"))
        .unwrap_or(&[])
        .iter()
        .map(|k| named(s(k, "name"), &id(k, "id")))
        .collect();
    out.many("knowledge", &knowledge);
    let shortcuts: Vec<String> = list(&info, "shortcut_commands")
        .iter()
        .map(|c| {
            let mut line = named(s(c, "command"), s(c, "name"));
            if !s(c, "description").is_empty() {
                line.push_str(": ");
                line.push_str(s(c, "description"));
            }
            line
        })
        .collect();
    out.many("shortcuts", &shortcuts);
    if let Some(p) = info.get("prompt_info") {
        out.text("prompt", s(p, "prompt"));
    }
    if let Some(t) = info
        .get("update_time")
        .and_then(Value::as_i64)
        .filter(|&t| t > 0)
    {
        out.one("updated", &crate::records::when(t, unix_now()));
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(v: Value) -> Vec<String> {
        lines(v.as_object().unwrap(), false)
    }

    #[test]
    fn a_coze_bot_info_reads_as_labelled_lines() {
        let l = summary(json!({
            "bot_id": "7", "name": "Tutor", "description": "teaches",
            "model_info": {"model_id": "1", "model_name": "m"},
            "onboarding_info": {"prologue": "hi\nthere", "suggested_questions": ["a?", "b?"]},
            "plugin_info_list": [{"plugin_id": "9", "name": "search",
                                  "api_info_list": [{"name": "web"}, {"name": "image"}]}],
            "workflow_info_list": [{"id": "3", "name": "wf"}],
            "shortcut_commands": [{"command": "/w", "name": "weather", "description": "d"}],
        }));
        assert_eq!(
            l,
            [
                "name        Tutor",
                "id          7",
                "description teaches",
                "model       m (1)",
                "prologue    hi",
                "            there",
                "questions   1. a?",
                "            2. b?",
                "plugins     search: web, image",
                "workflows   wf (3)",
                "shortcuts   /w (weather): d",
            ]
        );
    }

    #[test]
    fn a_studio_bot_info_and_control_characters() {
        let l = summary(json!({
            "bot_id": "7", "name": "S\u{1b}[2J",
            "model_info": {"model_id": "1"},
            "plugin_info_list": [{"plugin_id": "9", "api_id": "8", "api_name": "web"}],
            "workflow_info_list": [{"workflow_id": "3", "workflow_name": "wf"}],
            "shortcut_commands": null,
        }));
        assert_eq!(l[0], "name        S^[[2J");
        assert!(l.contains(&"model       1".to_string()), "{l:?}");
        assert!(l.contains(&"plugins     9: web".to_string()), "{l:?}");
        assert!(l.contains(&"workflows   wf (3)".to_string()), "{l:?}");
    }
}
