//! A workflow run's parameters, as people and scripts write them: `KEY=VALUE` (the
//! value a string), `KEY:=JSON` (any JSON value, as httpie reads `:=`), a whole JSON
//! object (`--params`, a stdin line, a `run` record's `parameters`), and the value an
//! uploaded file takes. Pure: the messages say what is wrong, and the caller names the
//! flag or the line they came from.

use serde_json::{Map, Value};

use crate::wire::jsonl::kind_of;

/// One `KEY=VALUE` or `KEY:=JSON` argument as a parameter's name and value. The first
/// `=` splits it: `a=b=c` is `a` = `"b=c"`; a `:` right before that `=` makes it `:=`,
/// whose right side must be one JSON value (`n:=3`, `tags:=["a","b"]`, `s:='"3"'`).
/// An empty key is refused; so is an argument without `=`.
pub fn param(arg: &str) -> Result<(String, Value), String> {
    let Some(eq) = arg.find('=') else {
        return Err(format!(
            "expected KEY=VALUE (a string) or KEY:=JSON (any JSON value), got {arg:?}"
        ));
    };
    let (key, json) = match arg[..eq].strip_suffix(':') {
        Some(key) => (key, true),
        None => (&arg[..eq], false),
    };
    if key.is_empty() {
        return Err(format!("no KEY before the '=' in {arg:?}"));
    }
    let value = &arg[eq + 1..];
    if !json {
        return Ok((key.to_owned(), Value::String(value.to_owned())));
    }
    match serde_json::from_str::<Value>(value) {
        Ok(v) => Ok((key.to_owned(), v)),
        Err(e) => Err(format!(
            "{key}:= takes a JSON value (for a string use {key}=VALUE): {}",
            without_position(&e)
        )),
    }
}

/// A whole set of parameters: `text` must be one JSON object (`{}` for none).
pub fn object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "expected a JSON object of parameters, got {}",
            kind_of(&other)
        )),
        Err(e) => Err(format!(
            "expected a JSON object of parameters: {}",
            without_position(&e)
        )),
    }
}

/// The value a workflow parameter takes for an uploaded file. coze.cn and coze.com read
/// a *string* holding the JSON `{"file_id":"…"}` (the Coze API docs, `workflow_run`:
/// `"image": "{\"file_id\":\"1122334455\"}"`); a self-hosted Coze Studio reads a file
/// input as the file's URL (coze-dev/coze-studio
/// `backend/domain/workflow/internal/nodes/convert.go`, `adaptorFileURL`), and only
/// its upload answer carries a `url`: so the URL when there is one, else the file id.
pub fn file_value(file_id: &str, url: Option<&str>) -> Value {
    match url.filter(|u| !u.is_empty()) {
        Some(u) => Value::String(u.to_owned()),
        None => Value::String(serde_json::json!({ "file_id": file_id }).to_string()),
    }
}

/// serde_json's message without " at line 1 column 7", which points into a value the
/// person may not see as lines.
fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_json_values_and_the_first_equals_sign() {
        let ok = |a: &str| param(a).unwrap();
        assert_eq!(ok("city=北京"), ("city".into(), json!("北京")));
        assert_eq!(
            ok("q=a=b"),
            ("q".into(), json!("a=b")),
            "the value keeps '='"
        );
        assert_eq!(ok("empty="), ("empty".into(), json!("")));
        assert_eq!(ok("n:=3"), ("n".into(), json!(3)));
        assert_eq!(ok("s:=\"3\""), ("s".into(), json!("3")));
        assert_eq!(
            ok("t:=[\"a\",{\"b\":null}]"),
            ("t".into(), json!(["a", {"b": null}]))
        );
        assert_eq!(
            ok("big:=7404830425073352713"),
            ("big".into(), json!(7404830425073352713u64))
        );
        // A ':' elsewhere in the key is part of it; a ':=' after the first '=' is text.
        assert_eq!(ok("a:b=c"), ("a:b".into(), json!("c")));
        assert_eq!(ok("a=b:=c"), ("a".into(), json!("b:=c")));
        for bad in ["novalue", "=x", ":=1", "n:=", "n:=tru", "n:=1 2", ""] {
            let e = param(bad).unwrap_err();
            assert!(!e.contains(" at line "), "{bad}: {e}");
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(param("n:=tru")
            .unwrap_err()
            .starts_with("n:= takes a JSON value"));
        assert!(param("novalue").unwrap_err().contains("KEY=VALUE"));
    }

    #[test]
    fn objects_only() {
        assert_eq!(object("{}").unwrap(), Map::new());
        assert_eq!(
            Value::Object(object("\u{feff} {\"a\":1} ").unwrap()),
            json!({"a": 1})
        );
        assert_eq!(
            object("[1]").unwrap_err(),
            "expected a JSON object of parameters, got an array"
        );
        assert_eq!(
            object("\"x\"").unwrap_err(),
            "expected a JSON object of parameters, got a string"
        );
        assert!(object("{\"a\":")
            .unwrap_err()
            .starts_with("expected a JSON object"));
    }

    #[test]
    fn a_file_is_its_id_as_json_text_or_its_url_on_studio() {
        assert_eq!(
            file_value("1122334455", None),
            json!("{\"file_id\":\"1122334455\"}")
        );
        assert_eq!(file_value("1", Some("")), json!("{\"file_id\":\"1\"}"));
        assert_eq!(
            file_value("1", Some("http://studio:8888/f/a.png")),
            json!("http://studio:8888/f/a.png")
        );
    }
}
