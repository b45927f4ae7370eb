//! Where frames come from: capture files and live interfaces (and PBX logs).
//! A source yields raw frames with their link type and timestamp; it knows nothing of SIP.

pub mod capture;
pub mod live;

pub use capture::{CaptureFile, Frame, SourceError};
pub use live::{CaptureStats, LiveCapture, LiveConfig, LiveError};
