//! Where frames come from: capture files and PBX trace logs (and, later, live interfaces).
//! A source yields raw frames with their link type and timestamp; it knows nothing of SIP.

pub mod capture;
pub mod log;

pub use capture::{CaptureFile, Frame, SourceError};
