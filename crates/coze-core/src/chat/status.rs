//! A chat's status as the server reports it. The spellings differ by server: coze.cn
//! says `canceled`, a self-hosted Coze Studio `cancelled` (coze-dev/coze-studio
//! `backend/domain/conversation/agentrun/entity/const.go`); both are [`Canceled`], which
//! answer records spell `canceled`. A status this version does not know is kept as the
//! server spelled it.
//!
//! [`Canceled`]: ChatStatus::Canceled

use std::fmt;

/// A chat's status, as last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ChatStatus {
    /// None reported yet.
    #[default]
    Unreported,
    /// `created`: the server took the chat.
    Created,
    /// `in_progress`: the bot is answering.
    InProgress,
    /// `completed`: the answer is whole. Final.
    Completed,
    /// `failed`: the chat ended without an answer (its `last_error` says why). Final.
    Failed,
    /// `requires_action`: the bot waits for its tool calls' outputs (or a chatflow for
    /// an answer). Final for one stream: a submit of the outputs continues the chat.
    RequiresAction,
    /// `canceled` (coze.cn) or `cancelled` (a self-hosted Coze Studio).
    Canceled,
    /// Any other status, as spelled: one this version does not know, or a tool's own
    /// (coze-chat's `invalid` for a stdin line it could not ask).
    Other(String),
}

impl ChatStatus {
    /// Reads a status as a server spells it; empty is [`Unreported`](Self::Unreported).
    pub fn parse(s: &str) -> ChatStatus {
        match s {
            "" => ChatStatus::Unreported,
            "created" => ChatStatus::Created,
            "in_progress" => ChatStatus::InProgress,
            "completed" => ChatStatus::Completed,
            "failed" => ChatStatus::Failed,
            "requires_action" => ChatStatus::RequiresAction,
            "canceled" | "cancelled" => ChatStatus::Canceled,
            other => ChatStatus::Other(other.to_owned()),
        }
    }

    /// The status as records spell it (empty when unreported).
    pub fn as_str(&self) -> &str {
        match self {
            ChatStatus::Unreported => "",
            ChatStatus::Created => "created",
            ChatStatus::InProgress => "in_progress",
            ChatStatus::Completed => "completed",
            ChatStatus::Failed => "failed",
            ChatStatus::RequiresAction => "requires_action",
            ChatStatus::Canceled => "canceled",
            ChatStatus::Other(s) => s,
        }
    }

    /// After this status nothing more happens.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ChatStatus::Completed
                | ChatStatus::Failed
                | ChatStatus::RequiresAction
                | ChatStatus::Canceled
        )
    }
}

impl fmt::Display for ChatStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_and_the_final_ones_are_final() {
        for (s, final_) in [
            ("created", false),
            ("in_progress", false),
            ("completed", true),
            ("failed", true),
            ("requires_action", true),
            ("canceled", true),
            ("some_future_status", false),
        ] {
            let status = ChatStatus::parse(s);
            assert_eq!(status.as_str(), s);
            assert_eq!(status.is_final(), final_, "{s}");
        }
        assert_eq!(ChatStatus::parse("cancelled"), ChatStatus::Canceled);
        assert_eq!(ChatStatus::parse("cancelled").to_string(), "canceled");
        assert_eq!(ChatStatus::parse(""), ChatStatus::default());
        // Studio's cancel writes the event's name into the status while the chat may
        // still run: not a final status.
        assert!(!ChatStatus::parse("conversation.chat.cancelled").is_final());
    }
}
