//! Capture files (pcap and pcapng) read through libpcap, the same library live capture
//! uses, so both share link-type handling. Yields frames with their capture timestamp;
//! knows nothing of IP or SIP.

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

/// Why a capture could not be opened or read to its end.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open capture {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// Frames read before the error are valid and have been handed on.
    #[error("capture {path} is damaged after {frames} frames: {reason}")]
    Truncated {
        path: PathBuf,
        frames: u64,
        reason: String,
    },
}

/// One captured frame. `data` is valid until the next call to `next_frame`.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    /// Microseconds since the Unix epoch, UTC.
    pub ts_us: i64,
    pub data: &'a [u8],
    /// Length on the wire; larger than `data.len()` when the snap length cut the frame.
    pub wire_len: u32,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("ts_us", &self.ts_us)
            .field("data", &crate::privacy::Redacted(self.data))
            .field("wire_len", &self.wire_len)
            .finish()
    }
}

/// Microseconds since the epoch from a pcap timestamp whose fraction counts nanoseconds
/// (`nanos`, files opened with nanosecond precision) or microseconds (live capture).
pub(crate) fn timestamp_us(secs: i64, fraction: i64, nanos: bool) -> i64 {
    let micros = if nanos {
        fraction.div_euclid(1000)
    } else {
        fraction
    };
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

/// A pcap or pcapng file being read.
pub struct CaptureFile {
    cap: Capture<Offline>,
    path: PathBuf,
    dlt: i32,
    frames: u64,
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, SourceError> {
        // Nanosecond precision keeps every digit a nanosecond pcap(ng) stores; we round
        // down to microseconds ourselves.
        let cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
            SourceError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let dlt = cap.get_datalink().0;
        Ok(CaptureFile {
            cap,
            path: path.to_path_buf(),
            dlt,
            frames: 0,
        })
    }

    /// The link-layer type (DLT) of the capture's frames.
    pub fn dlt(&self) -> i32 {
        self.dlt
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame, `Ok(None)` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.frames += 1;
                let ts_us = timestamp_us(p.header.ts.tv_sec, p.header.ts.tv_usec, true);
                Ok(Some(Frame {
                    ts_us,
                    data: p.data,
                    wire_len: p.header.len,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(SourceError::Truncated {
                path: self.path.clone(),
                frames: self.frames,
                reason: e.to_string(),
            }),
        }
    }
}
