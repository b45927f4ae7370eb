//! The dialog tracker: SIP messages in, finished call and text-message records out.
//!
//! Implements docs/call-model.md. Time advances only with the messages' own timestamps
//! (or an explicit `advance`), never the wall clock. Nothing here knows about SQLite.

mod record;
mod tracker;

pub use record::{CallRecord, Disposition, EndedBy, MessageRecord, Record, Side, TimeoutReason};
pub use tracker::{Meta, OpenChanges, Tracker, TrackerConfig, TrackerStats};
