//! Where frames come from: capture files (and, later, live interfaces and PBX logs).
//! A source yields raw frames with their link type and timestamp; it knows nothing of SIP.

pub mod capture;

pub use capture::{CaptureFile, Frame, SourceError};
