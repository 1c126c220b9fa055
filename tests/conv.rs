//! coze-conv end to end.
