//! callmeta: SIP call metadata from the wire or from PBX trace logs into a local store.
//!
//! The modules follow the data flow, one direction only:
//! `source` (frames from a capture) → `net` (link/IP/UDP payloads) → `sip` (parsed
//! messages, zero-copy) → `call` (dialog tracking, finished records) → `store` (SQLite).
//! A source knows nothing of SIP, the parser nothing of calls, the tracker nothing of
//! SQLite; only `ingest` (and the binary) wire them together.

pub mod call;
pub mod config;
pub mod daemon;
pub mod ingest;
pub mod logging;
pub mod net;
pub mod privacy;
pub mod sip;
pub mod source;
pub mod store;
pub mod time;
