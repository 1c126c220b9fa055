//! What coze-chat reads: the PROMPT argument, all of stdin as one prompt, or one item
//! per stdin line (plain text, or a `prompt` / `conversation` record), made the batch
//! engine's items (`Job`s).
//!
//! Each line is checked here, before anything is asked: its length (a line over
//! `--max-line-bytes` ends the input), its record's fields (a `content_type` other
//! than text, `meta_data` beyond the API's limits, what a chatflow cannot take), and
//! that some bot (or an app, for a chatflow) will answer it.
//! A prompt without an id of its own is counted by content, so a repeated line gets
//! an id of its own (`sha256:…#2`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Map, Value};

use coze_core::api::files;
use coze_core::batch::{self, Bad};
use coze_core::protocol::{self, Attachment, Prompt, Record};
use coze_core::wire::jsonl::{self, LineReader};
use coze_core::{Error, Result};

/// One thing to do, from one line.
#[derive(Debug)]
pub enum Item {
    Prompt {
        line: u64,
        prompt: Box<Prompt>,
    },
    /// Chat in this conversation from now on.
    Switch {
        conversation_id: String,
    },
    /// A `file` record (coze-file's output): attach it to the next prompt line.
    Attach(Attachment),
}

/// What a line is checked against besides its own shape.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// `--max-line-bytes`.
    pub max_line: usize,
    /// A bot answers prompts that name none (`--bot` or `COZE_BOT_ID`), or for a
    /// chatflow an app (`--app`).
    pub has_bot: bool,
    /// A chatflow answers (`--workflow`): text only, its `parameters` but none of a
    /// bot's own fields.
    pub chatflow: bool,
    /// The chatflow runs in an app (`--app`): a prompt may not name a bot as well.
    pub app: bool,
    /// `--meta`, which a prompt's own `meta_data` is added to.
    pub meta: Map<String, Value>,
    /// `--attach`: sent with every prompt, before the attachments of its own.
    pub attach: Vec<Attachment>,
    /// The record paths checked so far, and what was found: a thousand lines about
    /// one file look at it once.
    pub checked: RefCell<HashMap<PathBuf, std::result::Result<(), String>>>,
}

/// One prompt to ask: the batch engine's item.
pub struct Job {
    /// The stdin line it came from (none for the PROMPT argument or all of stdin).
    pub line: Option<u64>,
    pub prompt: Box<Prompt>,
    /// The conversation it goes to: its own, else the one in force when it was read.
    pub conversation: Option<String>,
}

impl Job {
    /// `prompt` in its own conversation, else in `current`'s.
    pub fn new(line: Option<u64>, prompt: Box<Prompt>, current: &Mutex<Option<String>>) -> Job {
        let conversation = match &prompt.conversation_id {
            Some(own) => Some(own.clone()),
            None => current.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        Job {
            line,
            prompt,
            conversation,
        }
    }
}

impl batch::Item for Job {
    /// What `--resume` knows it by: the prompt's id, or one derived from its content.
    fn id(&self) -> Value {
        self.prompt.effective_id()
    }

    /// One conversation never has two chats at once (the API refuses that with 4016).
    fn key(&self) -> Option<&str> {
        self.conversation.as_deref()
    }
}

/// The prompts of stdin lines as jobs: a `conversation` line switches `current`, the
/// conversation of the prompts after it.
pub struct Jobs<'a, R: BufRead> {
    items: Items<R>,
    current: &'a Mutex<Option<String>>,
}

impl<'a, R: BufRead> Jobs<'a, R> {
    pub fn new(reader: R, rules: Rules, current: &'a Mutex<Option<String>>) -> Self {
        Jobs {
            items: Items::new(reader, rules),
            current,
        }
    }
}

impl<R: BufRead> Iterator for Jobs<'_, R> {
    type Item = std::result::Result<Job, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.items.next_item()? {
                Ok(Item::Prompt { line, prompt }) => {
                    return Some(Ok(Job::new(Some(line), prompt, self.current)))
                }
                Ok(Item::Switch { conversation_id }) => {
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(conversation_id)
                }
                // Items keeps file records for the next prompt; none reach here.
                Ok(Item::Attach(_)) => {}
                Err(bad) => return Some(Err(bad)),
            }
        }
    }
}

/// `-`: all of stdin, up to `max` bytes, as one prompt.
pub fn whole_stdin(max: usize) -> Result<Prompt> {
    let bad = |message: String| Error::BadInput {
        line: None,
        message,
    };
    let bytes = jsonl::read_capped(io::stdin().lock(), max as u64).map_err(|e| match e.kind() {
        io::ErrorKind::FileTooLarge => bad(format!("{e}; --max-line-bytes raises the limit")),
        _ => bad(format!("reading stdin: {e}")),
    })?;
    let all = String::from_utf8(bytes).map_err(|_| bad("reading stdin: not valid UTF-8".into()))?;
    let text = all
        .strip_prefix('\u{feff}')
        .unwrap_or(&all)
        .trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Err(bad("stdin is empty: nothing to ask".into()));
    }
    Ok(plain(text))
}

/// Reads items lazily, so a prompt is answered before the next line is even read
/// (an interactive pipe gets its answer right away).
pub struct Items<R: BufRead> {
    lines: LineReader<R>,
    rules: Rules,
    /// How often each derived id has been given out.
    seen: HashMap<String, u32>,
    /// `file` records read since the last prompt, with the line of the first.
    pending: Vec<Attachment>,
    pending_line: u64,
}

impl<R: BufRead> Items<R> {
    pub fn new(reader: R, rules: Rules) -> Self {
        Items {
            lines: LineReader::with_max(reader, rules.max_line),
            rules,
            seen: HashMap::new(),
            pending: Vec::new(),
            pending_line: 0,
        }
    }

    /// The next item; `Err` names a line that cannot be used (reading may go on unless
    /// it is `fatal`).
    pub fn next_item(&mut self) -> Option<std::result::Result<Item, Bad>> {
        loop {
            let (line, text) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) if self.pending.is_empty() => return None,
                Ok(None) => {
                    self.pending.clear();
                    return Some(Err(Bad {
                        error: Error::input(
                            self.pending_line,
                            "file record: no prompt line after it to attach the file to",
                        ),
                        text: None,
                        id: None,
                        fatal: false,
                    }));
                }
                Err(e) => return Some(Err(Bad::unreadable(e))),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(match parse_line(line, &text, &self.rules) {
                Ok(Item::Prompt { line, mut prompt }) => {
                    if prompt.id.is_none() {
                        prompt.occurrence = self.count(&prompt.content);
                    }
                    let own = std::mem::take(&mut prompt.attachments);
                    prompt.attachments = self.rules.attach.clone();
                    prompt.attachments.append(&mut self.pending);
                    prompt.attachments.extend(own);
                    Ok(Item::Prompt { line, prompt })
                }
                Ok(Item::Attach(file)) => {
                    if self.pending.is_empty() {
                        self.pending_line = line;
                    }
                    self.pending.push(file);
                    continue;
                }
                Ok(item) => Ok(item),
                Err(error) => {
                    let fatal = !matches!(error.root(), Error::BadInput { .. });
                    let id = own_id(&text).unwrap_or_else(|| {
                        let mut p = plain(&text);
                        p.occurrence = self.count(&text);
                        p.effective_id()
                    });
                    Err(Bad {
                        error,
                        text: Some(text),
                        id: Some(id),
                        fatal,
                    })
                }
            });
        }
    }

    /// The occurrence number of one more prompt with this content and no id.
    fn count(&mut self, content: &str) -> u32 {
        let n = self
            .seen
            .entry(protocol::derived_prompt_id(content))
            .or_default();
        *n += 1;
        *n
    }
}

/// The `id` of a line that is a JSON object with one, whatever else is wrong with it.
fn own_id(text: &str) -> Option<Value> {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    m.remove("id").filter(|id| !id.is_null())
}

/// A line starting with `{` is a record; anything else is a plain-text prompt.
pub fn parse_line(line: u64, text: &str, rules: &Rules) -> Result<Item> {
    let prompt = if !text.trim_start().starts_with('{') {
        plain(text)
    } else if let Some(file) = file_record(line, text)? {
        if rules.chatflow {
            return Err(Error::input(line, format!("file record: {TEXT_ONLY}")));
        }
        return Ok(Item::Attach(file));
    } else {
        match Record::from_line(line, text)? {
            Record::Prompt(p) => {
                check_prompt(line, &p, rules)?;
                p
            }
            Record::Conversation(c) => {
                return Ok(Item::Switch {
                    conversation_id: c.conversation_id,
                })
            }
            other => {
                return Err(Error::input(
                    line,
                    format!(
                    "a {} record is not something to chat with (expected prompt or conversation)",
                    other.type_name()
                ),
                ))
            }
        }
    };
    if !rules.has_bot && prompt.bot_id.is_none() {
        let or_app = if rules.chatflow { " or --app ID" } else { "" };
        return Err(Error::usage(format!(
            "stdin line {line}: no bot for this prompt: pass --bot ID{or_app}, set \
             COZE_BOT_ID, or give the prompt record a bot_id"
        )));
    }
    Ok(Item::Prompt {
        line,
        prompt: Box::new(prompt),
    })
}

/// A `file` record (coze-file's output) as the attachment it stands for; None for a
/// line that is not one.
fn file_record(line: u64, text: &str) -> Result<Option<Attachment>> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        return Ok(None);
    };
    if m.get("type").and_then(Value::as_str) != Some("file") {
        return Ok(None);
    }
    let string = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(file_id) = string("file_id").filter(|s| !s.trim().is_empty()) else {
        return Err(Error::input(
            line,
            "file record: no `file_id` (coze-file upload prints one)",
        ));
    };
    Ok(Some(Attachment {
        file_id: Some(file_id),
        file_name: string("file_name"),
        ..Attachment::default()
    }))
}

/// Why a chatflow gets no files (the Coze API docs, `workflow_chat`: `content_type`
/// must be text; files go in as the workflow's parameters).
const TEXT_ONLY: &str = "a chatflow takes text only; pass files as parameters with coze-workflow";

/// A chatflow prompt's own `parameters`, added to `--param`'s; checked to be an
/// object when the line is read.
pub fn parameters(p: &Prompt) -> Map<String, Value> {
    match p.extra.get("parameters") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

/// What a chatflow's prompt record asks for that a chatflow does not take.
fn check_chatflow_prompt(line: u64, p: &Prompt, rules: &Rules) -> Result<()> {
    let refuse = |m: String| Err(Error::input(line, format!("prompt record: {m}")));
    if !p.attachments.is_empty() {
        return refuse(format!("attachments: {TEXT_ONLY}"));
    }
    if p.custom_variables.is_some() {
        return refuse("custom_variables are a bot's; a chatflow takes \"parameters\"".into());
    }
    if p.meta_data.is_some() {
        return refuse("meta_data: a chatflow's chat has none".into());
    }
    if rules.app && p.bot_id.is_some() {
        return refuse(
            "bot_id cannot go with --app: a chatflow runs in an app or in a bot, not both".into(),
        );
    }
    match p.extra.get("parameters") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(other) => refuse(format!("\"parameters\" must be an object, not {other}")),
    }
}

/// What a prompt record asks for that coze-chat cannot send as asked.
fn check_prompt(line: u64, p: &Prompt, rules: &Rules) -> Result<()> {
    if rules.chatflow {
        check_chatflow_prompt(line, p, rules)?;
    }
    if p.content.trim().is_empty() {
        return Err(Error::input(line, "prompt record: `content` is empty"));
    }
    // The chat request says `content_type: text`: another type (object_string, an
    // image or a file) would be sent as text, which is not what the record asked.
    match p.extra.get("content_type") {
        None => {}
        Some(Value::String(t)) if t == "text" => {}
        Some(other) => {
            return Err(Error::input(
                line,
                format!(
                    "prompt record: content_type {other} is not supported (coze-chat sends \
                     text only)"
                ),
            ))
        }
    }
    for (i, a) in p.attachments.iter().enumerate() {
        let n = i + 1;
        a.check()
            .map_err(|m| Error::input(line, format!("prompt record: attachment {n}: {m}")))?;
        if let Some(path) = &a.path {
            // Checked now, so no chat starts about a file that cannot be sent.
            let mut checked = rules.checked.borrow_mut();
            let found = checked
                .entry(path.clone())
                .or_insert_with(|| files::inspect(path, files::Limit::API).map(|_| ()));
            found.clone().map_err(|why| {
                let path = path.display();
                Error::input(
                    line,
                    format!("prompt record: attachment {n}: {path}: {why}"),
                )
            })?;
        }
    }
    if let Some(own) = &p.meta_data {
        protocol::check_meta_data(own)
            .map_err(|m| Error::input(line, format!("prompt record: meta_data: {m}")))?;
        if !rules.meta.is_empty() {
            let mut all = rules.meta.clone();
            all.extend(own.clone());
            protocol::check_meta_data(&all).map_err(|m| {
                Error::input(
                    line,
                    format!("prompt record: meta_data with --meta added: {m}"),
                )
            })?;
        }
    }
    Ok(())
}

pub fn plain(text: &str) -> Prompt {
    Prompt {
        content: text.to_owned(),
        id: None,
        conversation_id: None,
        bot_id: None,
        user_id: None,
        custom_variables: None,
        meta_data: None,
        attachments: Vec::new(),
        extra: Default::default(),
        occurrence: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            max_line: 1 << 20,
            has_bot: true,
            chatflow: false,
            app: false,
            meta: Map::new(),
            attach: Vec::new(),
            checked: RefCell::default(),
        }
    }

    #[test]
    fn a_chatflow_s_lines_are_text_and_parameters() {
        let flow = Rules {
            chatflow: true,
            app: true,
            ..rules()
        };
        let check = |line: &str| parse_line(2, line, &flow).map(|_| ());
        check("plain").unwrap();
        check(r#"{"type":"prompt","content":"x","parameters":{"lang":"en"}}"#).unwrap();
        for (line, why) in [
            (
                r#"{"type":"file","file_id":"1"}"#,
                "file record: a chatflow takes text only",
            ),
            (
                r#"{"type":"prompt","content":"x","attachments":[{"file_id":"1"}]}"#,
                "attachments: a chatflow takes text only",
            ),
            (
                r#"{"type":"prompt","content":"x","custom_variables":{"a":"1"}}"#,
                "custom_variables",
            ),
            (
                r#"{"type":"prompt","content":"x","meta_data":{"a":"1"}}"#,
                "meta_data",
            ),
            (
                r#"{"type":"prompt","content":"x","bot_id":"7"}"#,
                "bot_id cannot go with --app",
            ),
            (
                r#"{"type":"prompt","content":"x","parameters":[1]}"#,
                "must be an object",
            ),
        ] {
            let e = check(line).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{line}: {e}");
            assert!(e.to_string().starts_with("stdin line 2: "), "{e}");
            assert!(e.to_string().contains(why), "{line}: {e}");
        }
        // Without --app, a record's bot is the bot the chatflow runs in.
        let in_bot = Rules { app: false, ..flow };
        parse_line(
            2,
            r#"{"type":"prompt","content":"x","bot_id":"7"}"#,
            &in_bot,
        )
        .unwrap();
    }

    #[test]
    fn file_records_attach_to_the_next_prompt_after_the_flags() {
        let mut r = rules();
        r.attach = vec![Attachment::from_flag("https://x.example/a.png")];
        let input = "{\"type\":\"file\",\"file_id\":\"1\",\"file_name\":\"a.pdf\"}\n\
                     {\"type\":\"file\",\"file_id\":\"2\"}\nfirst\nsecond\n";
        let mut items = Items::new(input.as_bytes(), r);
        let ids = |item: Option<std::result::Result<Item, Bad>>| match item {
            Some(Ok(Item::Prompt { prompt, .. })) => prompt
                .attachments
                .iter()
                .map(|a| a.file_id.clone().or(a.file_url.clone()).unwrap())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ids(items.next_item()),
            ["https://x.example/a.png", "1", "2"]
        );
        assert_eq!(ids(items.next_item()), ["https://x.example/a.png"]);
        assert!(items.next_item().is_none());
        // A file record with nothing after it is a bad line of its own.
        let mut items = Items::new(
            "q\n{\"type\":\"file\",\"file_id\":\"1\"}\n".as_bytes(),
            rules(),
        );
        assert!(matches!(items.next_item(), Some(Ok(_))));
        let bad = items.next_item().unwrap().unwrap_err();
        assert!(bad.error.to_string().contains("line 2"), "{}", bad.error);
        assert!(items.next_item().is_none());
    }

    #[test]
    fn lines_become_items() {
        let input = "hello\n\n{\"type\":\"prompt\",\"content\":\"x\",\"id\":\"a\"}\n{\"type\":\"conversation\",\"conversation_id\":\"9\"}\n{bad\n{\"type\":\"token\",\"access_token\":\"t\"}\n";
        let mut items = Items::new(input.as_bytes(), rules());
        assert!(matches!(
            items.next_item(),
            Some(Ok(Item::Prompt { line: 1, .. }))
        ));
        match items.next_item() {
            Some(Ok(Item::Prompt { line: 3, prompt })) => assert_eq!(prompt.id, Some("a".into())),
            other => panic!("{other:?}"),
        }
        assert!(matches!(items.next_item(), Some(Ok(Item::Switch { .. }))));
        let e = items.next_item().unwrap().unwrap_err();
        assert!(e.error.to_string().starts_with("stdin line 5:"), "{e:?}");
        assert_eq!((e.text.as_deref(), e.fatal), (Some("{bad"), false));
        let e = items.next_item().unwrap().unwrap_err();
        assert!(
            e.error.to_string().contains("line 6: a token record"),
            "{e:?}"
        );
        assert!(items.next_item().is_none());
    }

    #[test]
    fn repeated_content_gets_ids_of_its_own() {
        let input = "same\nsame\n{\"type\":\"prompt\",\"content\":\"same\"}\n{\"type\":\"prompt\",\"content\":\"same\",\"id\":1}\n";
        let mut items = Items::new(input.as_bytes(), rules());
        let mut ids = Vec::new();
        while let Some(Ok(Item::Prompt { prompt, .. })) = items.next_item() {
            ids.push(prompt.effective_id());
        }
        let first = protocol::derived_prompt_id("same");
        assert_eq!(
            ids,
            [
                Value::from(first.clone()),
                Value::from(format!("{first}#2")),
                Value::from(format!("{first}#3")),
                Value::from(1),
            ]
        );
    }

    #[test]
    fn records_asking_for_what_is_not_sent_are_refused() {
        let check = |line: &str, rules: &Rules| parse_line(4, line, rules).map(|_| ());
        let r = rules();
        check(
            r#"{"type":"prompt","content":"x","content_type":"text"}"#,
            &r,
        )
        .unwrap();
        let e = check(
            r#"{"type":"prompt","content":"x","content_type":"object_string"}"#,
            &r,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.to_string().contains("content_type \"object_string\""),
            "{e}"
        );
        let e = check(
            r#"{"type":"prompt","content":"x","meta_data":{"k":""}}"#,
            &r,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("stdin line 4: prompt record: meta_data:"),
            "{e}"
        );
        let mut r16 = rules();
        r16.meta = (0..16)
            .map(|i| (format!("k{i}"), Value::from("v")))
            .collect();
        let e = check(
            r#"{"type":"prompt","content":"x","meta_data":{"own":"v"}}"#,
            &r16,
        )
        .unwrap_err();
        assert!(e.to_string().contains("17 pairs"), "{e}");
        let no_bot = Rules {
            has_bot: false,
            ..rules()
        };
        let e = check("plain", &no_bot).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        check(r#"{"type":"prompt","content":"x","bot_id":"7"}"#, &no_bot).unwrap();
    }
}
