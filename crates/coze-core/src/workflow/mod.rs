//! Layer 7, the workflow engine: one run of a workflow, streamed, synchronous or
//! async, and the answers to its questions, turned into one sequence of events.
//!
//! `RunState` is the event machine (`state`): it takes the workflow events in the order
//! the server sends them (the Coze API docs, `workflow_stream_run`) and keeps what a
//! caller needs (the run's id and trace page, usage, the output, how it ended), while
//! a `Sink` sees every event and each Message's content as it arrives. A streamed run
//! or resume (`stream`) feeds it from the SSE reader; a sync run (`sync`) feeds it the
//! events its one answer stands for. `output` decodes what a run returns (JSON text,
//! JSON inside JSON, plain text); `question` reads what a run stopped to ask;
//! `history` reads an async run's progress; `spec` builds the requests. Printing, and
//! asking a person, are the binary's business.

mod history;
mod output;
mod question;
mod spec;
mod state;
mod stream;
mod sync;

pub use history::{history, History, RunStatus};
pub use spec::{Answer, RunSpec};
pub use state::{End, Interruption, RunState, Sink};
pub use stream::{stream, Call};
pub use sync::{start, sync, Started};

use crate::error::Error;

/// What a failed call was for: the same code means another thing in a run's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    /// Running a workflow.
    Run,
    /// Answering a run's question (an interrupt): it sends no parameters.
    Answer,
    /// Reading a run's history.
    History,
}

/// `e` with what to do about it, when its code says (the codes of the Coze API docs,
/// `workflow_run` and `workflow_stream_run`, and a self-hosted Coze Studio's,
/// coze-dev/coze-studio `backend/types/errno/workflow.go`), and the run's trace page
/// when the answer named one.
pub fn advice(e: Error, during: During) -> Error {
    let Some(api) = e.server_answer() else {
        return e;
    };
    let what = match api.coze_code() {
        // The history of a run the server does not know: coze.cn 4200, Studio's
        // "record not found".
        Some(4200 | 777_777_775) if during == During::History => {
            Some("no such run of this workflow: check the workflow id and the execute id")
        }
        // Not published: coze.cn 4200; Studio 6031 (a sync run), 720702011 (a
        // stream's raw code).
        Some(4200 | 6031 | 720_702_011) => Some(
            "publish the workflow in the Coze editor, then run it again: the API runs a \
             workflow's published version",
        ),
        Some(6003) => Some(
            "async runs are a paid plan's feature on this account: run it streamed \
             instead (without --async)",
        ),
        // An answer refused: its interrupt is not waiting (answered already, or the
        // run ended), or the answer does not fit what was asked.
        Some(4000 | 720_702_001 | 720_702_002) if during == During::Answer => Some(
            "an interrupt takes one answer while its run waits: this one may have been \
             answered already or its run ended (coze-workflow status says where the run \
             is); else check the answer against the question",
        ),
        // A bad or missing parameter: 4000; Studio's raw 720702001 and 720702002.
        Some(4000 | 720_702_001 | 720_702_002) => Some(
            "check the parameters against the workflow's start node: names, required \
             ones and types (KEY=VALUE sends a string, KEY:=JSON any JSON value)",
        ),
        // A sync run stopped at a question: Studio 6039, raw 720702078.
        Some(6039 | 720_702_078) => Some(
            "the workflow asks a question, which a sync run cannot on this server: run \
             it streamed (without --no-stream)",
        ),
        _ => None,
    };
    let trace = api.debug_url.as_ref().map(|u| format!("debug_url: {u}"));
    match (what, trace) {
        (Some(w), Some(t)) => e.with_hint(format!("{w}; {t}")),
        (Some(w), None) => e.with_hint(w),
        (None, Some(t)) => e.with_hint(t),
        (None, None) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiCode, ApiError};

    fn api(code: i64, debug_url: Option<&str>) -> Error {
        Error::Api(ApiError {
            status: 200,
            code: ApiCode::Coze(code),
            msg: "m".into(),
            logid: Some("L".into()),
            retry_after: None,
            debug_url: debug_url.map(str::to_owned),
        })
    }

    #[test]
    fn errors_say_what_to_do() {
        for code in [4200, 6031, 720_702_011] {
            let e = advice(api(code, None).context("run r1"), During::Run);
            assert!(e.to_string().contains("(publish the workflow"), "{e}");
            assert_eq!(e.exit_code(), 1);
        }
        assert!(advice(api(6003, None), During::Run)
            .to_string()
            .contains("without --async"));
        assert!(advice(api(4000, None), During::Run)
            .to_string()
            .contains("KEY:=JSON"));
        let answer = advice(api(4000, None), During::Answer).to_string();
        assert!(
            answer.contains("answered already") && !answer.contains("start node"),
            "{answer}"
        );
        assert!(advice(api(6039, None), During::Run)
            .to_string()
            .contains("without --no-stream"));
        let e = advice(
            api(5000, Some("https://x/work_flow?execute_id=1")),
            During::Run,
        );
        assert_eq!(
            e.to_string(),
            "code 5000: m (logid L) (debug_url: https://x/work_flow?execute_id=1)"
        );
        let e = advice(api(4200, Some("https://x/d")), During::Run);
        assert!(
            e.to_string()
                .ends_with("published version; debug_url: https://x/d)"),
            "{e}"
        );
        assert!(advice(api(4200, None), During::History)
            .to_string()
            .contains("no such run"));
        let plain = advice(Error::Network("down".into()), During::Run);
        assert_eq!(plain.to_string(), "down");
    }
}
