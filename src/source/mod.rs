//! Where frames come from: capture files, live interfaces and PBX trace logs.
//! A source yields raw frames (or, for logs, framed messages) with their time; it knows
//! nothing of SIP.

pub mod capture;
pub mod live;
pub mod log;

pub use capture::{CaptureFile, Frame, SourceError};
pub use live::{CaptureStats, LiveCapture, LiveConfig, LiveError};
