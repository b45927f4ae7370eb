//! Following a log while the PBX writes it, like `tail -F`, across rotation and restarts.
//!
//! [`Follower::poll`] reads what was appended since the last call, feeds complete lines
//! to the format's framer (a partial trailing line waits for its `\n`, so where the
//! writer's flushes fall never matters) and hands on the framed messages. At the end of
//! the file it looks at the path again:
//! - a different file there (device/inode): the old one was renamed (Asterisk
//!   `rotatestrategy = sequential|rotate|timestamp`, logrotate `create`, FreeSWITCH
//!   rollover): the old file is drained through its open descriptor, then the new one is
//!   read from its start;
//! - the same file, shorter than what was read: copytruncate; read again from the start
//!   (what was written between the copy and the truncate is lost to every reader);
//! - nothing there: the rotation is in progress; the old file is kept until a new one
//!   appears.
//!
//! [`Follower::checkpoint`] is where a restart must resume so that no message is lost or
//! read twice: device, inode, the offset of the first line not yet fully handed on, and a
//! hash of the line before it (so a file replaced by a same-inode one is noticed). The
//! daemon saves it in the same store transaction as the records those messages made
//! (`Store::write_batch_with_checkpoint`). On open, a checkpoint whose inode is no longer
//! at the path is looked for among the files beside it (the rotated file), read to its
//! end, and then the new file follows.
//!
//! Blocking file I/O only, no async: the daemon's control plane decides when to poll
//! (inotify or a timer) and runs `poll` on the pipeline thread with the parser and tracker.

use std::fs::{File, Metadata};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

use super::text::fnv1a;
use super::{framer, needs_prescan, Framer, FramerStats, LogClock, LogFormat, LogMessage};
use crate::time::now_us;

/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;
/// Longest line kept while waiting for its end; a longer one is cut (counted) so a log
/// without newlines cannot grow the buffer without bound. A line cap, not a message cap,
/// but tied to the body cap: no line of a message a framer keeps is longer than the
/// largest body (a header section is far shorter), and an Event Socket frame, which
/// carries log lines, is held to it too.
pub(crate) const MAX_LINE: usize = crate::sip::MAX_BODY;

/// Where to resume a followed log (the `log_checkpoints` row, schema v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub device: u64,
    pub inode: u64,
    /// Offset of the first byte not yet handed on completely.
    pub offset: u64,
    /// [`line_fingerprint`] of the line that ends at `offset` (0 at offset 0).
    pub last_line_hash: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot read followed log {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one `poll` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub messages: u64,
    /// Rotations noticed (rename or copytruncate).
    pub rotations: u32,
}

/// How a log is followed.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub path: PathBuf,
    pub format: LogFormat,
    pub timezone: TimeZone,
    pub year: Option<i16>,
}

struct Open {
    file: File,
    device: u64,
    inode: u64,
}

/// A followed log; see the module docs.
pub struct Follower {
    cfg: FollowConfig,
    open: Option<Open>,
    /// Bytes of the open file consumed (complete lines fed, plus `partial`).
    offset: u64,
    partial: Vec<u8>,
    framer: Box<dyn Framer>,
    /// Hash of the last complete line.
    last_hash: u64,
    safe: Checkpoint,
    buf: Vec<u8>,
    /// Lines cut at [`MAX_LINE`], and rotations seen.
    pub long_lines: u64,
    pub rotations: u64,
}

fn meta_of(m: &Metadata) -> (u64, u64, u64) {
    (m.dev(), m.ino(), m.len())
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> FollowError + '_ {
    move |source| FollowError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads one line into `line`, keeping at most the follower's `MAX_LINE` bytes of it: the
/// rest of a longer line is skipped, so a file without newlines cannot grow memory.
/// Returns the bytes consumed (0 at the end of the file).
pub(crate) fn read_line_bounded(
    r: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let limit = MAX_LINE;
    let mut n = r.by_ref().take(limit as u64).read_until(b'\n', line)?;
    if n == limit && line.last() != Some(&b'\n') {
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            match memchr::memchr(b'\n', buf) {
                Some(p) => {
                    r.consume(p + 1);
                    n += p + 1;
                    break;
                }
                None => {
                    let len = buf.len();
                    r.consume(len);
                    n += len;
                }
            }
        }
    }
    Ok(n)
}

/// Hands every line of `file` up to `end` (the whole file when `None`) to `f`, without a
/// trailing newline, streaming: a log of any size is read in bounded memory.
fn for_each_line(
    file: &mut File,
    end: Option<u64>,
    mut f: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(64 * 1024, file.by_ref().take(end.unwrap_or(u64::MAX)));
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if read_line_bounded(&mut r, &mut line)? == 0 {
            return Ok(());
        }
        f(line.strip_suffix(b"\n").unwrap_or(&line));
    }
}

/// What a checkpoint keeps of the line before it: 16 bits of FNV-1a. Enough to notice a
/// file replaced under the same inode (together with device, inode and offset); too few
/// to tell anything of the line, which may be part of a message body that the store must
/// never hold, even as an unkeyed hash of a short text (docs/privacy.md).
fn line_fingerprint(line: &[u8]) -> u64 {
    fnv1a(line) & 0xffff
}

/// The hash of the line ending at `offset` (its `\n` at `offset - 1`), or `None` when
/// there is none.
fn line_hash_before(file: &mut File, offset: u64) -> std::io::Result<Option<u64>> {
    if offset == 0 {
        return Ok(Some(0));
    }
    let start = offset.saturating_sub(MAX_LINE as u64 + 1);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.by_ref().take(offset - start).read_to_end(&mut buf)?;
    if buf.len() as u64 != offset - start || buf.last() != Some(&b'\n') {
        return Ok(None);
    }
    buf.pop();
    let begin = memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1);
    Ok(Some(line_fingerprint(&buf[begin..])))
}

impl Follower {
    /// Starts following `cfg.path` from `checkpoint` (or from the start of the file when
    /// there is none or it no longer matches). A missing file is not an error: it is
    /// waited for.
    pub fn open(
        cfg: FollowConfig,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Follower, FollowError> {
        let clock = LogClock::new(cfg.timezone.clone(), cfg.year, now_us());
        let mut f = Follower {
            framer: framer(cfg.format, clock),
            cfg,
            open: None,
            offset: 0,
            partial: Vec::new(),
            last_hash: 0,
            safe: Checkpoint::default(),
            buf: vec![0; CHUNK],
            long_lines: 0,
            rotations: 0,
        };
        let Some(cp) = checkpoint else {
            f.open_current(None)?;
            return Ok(f);
        };
        match std::fs::metadata(&f.cfg.path) {
            Ok(m) if (m.dev(), m.ino()) == (cp.device, cp.inode) => f.open_current(Some(cp))?,
            _ => {
                // Rotated while we were stopped: finish the old file first, if it is still
                // beside the log under another name.
                if let Some(old) = f.find_rotated(&cp) {
                    let file = File::open(&old).map_err(read_err(&old))?;
                    f.open = Some(Open {
                        file,
                        device: cp.device,
                        inode: cp.inode,
                    });
                    if !f.resume_at(cp)? {
                        f.offset = 0;
                    }
                } else {
                    f.open_current(None)?;
                }
            }
        }
        Ok(f)
    }

    fn find_rotated(&self, cp: &Checkpoint) -> Option<PathBuf> {
        let dir = self.cfg.path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let m = e.metadata().ok()?;
            ((m.dev(), m.ino()) == (cp.device, cp.inode)).then(|| e.path())
        })
    }

    /// Opens the file at the path, resuming at `cp` when it still matches.
    fn open_current(&mut self, cp: Option<Checkpoint>) -> Result<(), FollowError> {
        let path = self.cfg.path.clone();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(read_err(&path)(e)),
        };
        let (device, inode, _) = meta_of(&file.metadata().map_err(read_err(&path))?);
        self.open = Some(Open {
            file,
            device,
            inode,
        });
        self.offset = 0;
        self.partial.clear();
        if needs_prescan(self.cfg.format) {
            self.prescan()?;
        }
        if let Some(cp) = cp {
            if self.resume_at(cp)? {
                if needs_prescan(self.cfg.format) {
                    self.warm_up(cp.offset)?;
                }
            } else {
                self.offset = 0;
            }
        }
        self.safe = self.position();
        Ok(())
    }

    /// FreeSWITCH: re-reads the lines before a checkpoint without handing anything on, so
    /// the date of time-of-day stamps is the one at the checkpoint (midnights and dated
    /// lines before it counted).
    fn warm_up(&mut self, offset: u64) -> Result<(), FollowError> {
        let path = self.cfg.path.clone();
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let framer = &mut self.framer;
        for_each_line(&mut open.file, Some(offset), |l| {
            framer.line(l, &mut |_| {})
        })
        .and_then(|_| open.file.seek(SeekFrom::Start(offset)))
        .map_err(read_err(&path))?;
        self.framer.finish(&mut |_| {});
        Ok(())
    }

    /// FreeSWITCH: dates and roll-overs of what is already in the file (§3.1).
    fn prescan(&mut self) -> Result<(), FollowError> {
        let path = self.cfg.path.clone();
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let framer = &mut self.framer;
        for_each_line(&mut open.file, None, |l| framer.prescan(l))
            .and_then(|_| open.file.seek(SeekFrom::Start(0)))
            .map_err(read_err(&path))?;
        self.framer.prescan_done();
        Ok(())
    }

    /// Seeks to a checkpoint if the line before it is still the one hashed.
    fn resume_at(&mut self, cp: Checkpoint) -> Result<bool, FollowError> {
        let path = self.cfg.path.clone();
        let Some(open) = &mut self.open else {
            return Ok(false);
        };
        let len = open.file.metadata().map_err(read_err(&path))?.len();
        if cp.offset > len {
            return Ok(false);
        }
        let hash = line_hash_before(&mut open.file, cp.offset).map_err(read_err(&path))?;
        if hash != Some(cp.last_line_hash) {
            return Ok(false);
        }
        open.file
            .seek(SeekFrom::Start(cp.offset))
            .map_err(read_err(&path))?;
        self.offset = cp.offset;
        self.last_hash = cp.last_line_hash;
        self.safe = cp;
        Ok(true)
    }

    fn position(&self) -> Checkpoint {
        match &self.open {
            Some(o) => Checkpoint {
                device: o.device,
                inode: o.inode,
                offset: self.offset - self.partial.len() as u64,
                last_line_hash: self.last_hash,
            },
            None => Checkpoint::default(),
        }
    }

    /// Where a restart must resume: no message handed on before it is read again, none
    /// after it is lost. Save it with the records of the messages handed on so far.
    pub fn checkpoint(&self) -> Checkpoint {
        self.safe
    }

    pub fn stats(&self) -> &FramerStats {
        self.framer.stats()
    }

    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// Reads what was appended (at most `max_bytes` this call, so one busy log cannot
    /// starve the others) and handles rotation; calls `out` for each framed message.
    pub fn poll(
        &mut self,
        max_bytes: u64,
        out: &mut dyn FnMut(&LogMessage<'_>),
    ) -> Result<Progress, FollowError> {
        let mut progress = Progress::default();
        // A live log's missing year is the one closest before now (PBX_LOGS.md §1.3).
        if let Some(clock) = self.framer.clock_mut() {
            clock.set_reference_us(now_us());
        }
        if self.open.is_none() {
            self.open_current(None)?;
            if self.open.is_none() {
                return Ok(progress);
            }
        }
        let max_bytes = max_bytes.max(1);
        self.read_available(max_bytes, &mut progress, out)?;
        if progress.bytes >= max_bytes {
            return Ok(progress);
        }
        // At the end of the file: has it been rotated?
        let path = self.cfg.path.clone();
        let Some(open) = &self.open else {
            return Ok(progress);
        };
        match std::fs::metadata(&path) {
            Ok(m) if (m.dev(), m.ino()) != (open.device, open.inode) => {
                // Renamed away: drain the old file (the writer may have written after our
                // read and before its rename), then switch.
                self.read_available(u64::MAX, &mut progress, out)?;
                self.end_of_file(out);
                progress.rotations += 1;
                self.rotations += 1;
                self.open_current(None)?;
                self.read_available(max_bytes, &mut progress, out)?;
            }
            Ok(m) if m.len() < self.offset => {
                // copytruncate.
                progress.rotations += 1;
                self.rotations += 1;
                self.partial.clear();
                self.offset = 0;
                if let Some(open) = &mut self.open {
                    open.file
                        .seek(SeekFrom::Start(0))
                        .map_err(read_err(&path))?;
                }
                self.safe = self.position();
                self.read_available(max_bytes, &mut progress, out)?;
            }
            _ => {}
        }
        Ok(progress)
    }

    /// The input paused (the daemon decides how long): hands on a message still being
    /// collected, for formats whose messages end only at the next record (Cisco).
    pub fn flush(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.framer.finish(out);
        if !self.framer.in_message() && self.partial.is_empty() {
            self.safe = self.position();
        }
    }

    /// The file is finished (rotated away): its last line counts even without `\n`.
    fn end_of_file(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.framer.line(&line, out);
        }
    }

    fn read_available(
        &mut self,
        max_bytes: u64,
        progress: &mut Progress,
        out: &mut dyn FnMut(&LogMessage<'_>),
    ) -> Result<(), FollowError> {
        let path = self.cfg.path.clone();
        loop {
            let Some(open) = &mut self.open else {
                return Ok(());
            };
            if progress.bytes >= max_bytes {
                return Ok(());
            }
            let want = (max_bytes - progress.bytes).min(CHUNK as u64) as usize;
            let n = match open.file.read(&mut self.buf[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(&path)(e)),
            };
            progress.bytes += n as u64;
            let chunk = std::mem::take(&mut self.buf);
            self.feed(&chunk[..n], progress, out);
            self.buf = chunk;
        }
    }

    /// Splits a chunk into lines; keeps the incomplete tail in `partial`.
    fn feed(
        &mut self,
        mut chunk: &[u8],
        progress: &mut Progress,
        out: &mut dyn FnMut(&LogMessage<'_>),
    ) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let line_start = self.offset - self.partial.len() as u64;
            let end = self.offset + nl as u64 + 1;
            if self.partial.is_empty() {
                self.line(&chunk[..nl], line_start, end, progress, out);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..nl]);
                self.line(&line, line_start, end, progress, out);
                line.clear();
                self.partial = line;
            }
            self.offset = end;
            chunk = &chunk[nl + 1..];
        }
        self.offset += chunk.len() as u64;
        if self.partial.len() + chunk.len() > MAX_LINE {
            self.long_lines += 1;
        } else {
            self.partial.extend_from_slice(chunk);
        }
    }

    fn line(
        &mut self,
        line: &[u8],
        start: u64,
        end: u64,
        progress: &mut Progress,
        out: &mut dyn FnMut(&LogMessage<'_>),
    ) {
        let was_in = self.framer.in_message();
        let mut emitted = 0;
        self.framer.line(line, &mut |m| {
            emitted += 1;
            out(m)
        });
        progress.messages += emitted;
        let hash = line_fingerprint(line);
        let now_in = self.framer.in_message();
        if let Some(o) = &self.open {
            if !now_in {
                // Idle after this line: resume after it.
                self.safe = Checkpoint {
                    device: o.device,
                    inode: o.inode,
                    offset: end,
                    last_line_hash: hash,
                };
            } else if !was_in || emitted > 0 {
                // A message starts at this line (and everything before it was handed
                // on): resume at its start.
                self.safe = Checkpoint {
                    device: o.device,
                    inode: o.inode,
                    offset: start,
                    last_line_hash: if start == 0 { 0 } else { self.last_hash },
                };
            }
        }
        self.last_hash = hash;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_the_next_line_still_read() {
        let limit = MAX_LINE;
        let mut text = vec![b'a'; limit + 10];
        text.extend_from_slice(b"\nnext\n");
        let mut r = std::io::BufReader::new(&text[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, &mut line).expect("read"),
            limit + 11
        );
        assert_eq!(line.len(), limit);
        line.clear();
        read_line_bounded(&mut r, &mut line).expect("read");
        assert_eq!(line, b"next\n");
    }
}
