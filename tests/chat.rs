//! coze-chat end to end.
