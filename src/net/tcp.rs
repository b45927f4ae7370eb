//! TCP stream reassembly for SIP (RFC 3261 §18.3), SIP over WebSocket (RFC 7118) and the
//! recognition of TLS, per connection and direction.
//!
//! Segments come in capture order; each direction's bytes are put back in sequence order
//! (retransmissions and overlaps trimmed, out-of-order segments held until the hole fills or
//! [`NetConfig::tcp_gap_timeout`] passes), then cut into SIP messages by `Content-Length`
//! (`framing`). A connection seen from its middle, or after a hole that never filled, is
//! resynchronised on the next SIP start line; the message across the hole is counted as
//! broken. Keep-alive CRLFs (RFC 5626 §3.5.1) are skipped.
//!
//! Bounded: a cap on connections, on bytes per direction and on bytes overall, each with a
//! counter; the least recently active connections go first. FIN, RST and an idle timeout
//! free a connection's state. Buffers belong to a connection and are reused; a segment that
//! completes messages from an empty buffer is framed in place, without copying. Nothing here
//! knows what a call is.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::config::NetConfig;
use super::framing::{self, Frame};
use super::tls::{self, TlsPeers};
use super::websocket::{self, Http, Parsed};
use super::{Datagram, Transport};

/// Out-of-order segments held per direction before the hole is given up on.
const MAX_HELD_SEGMENTS: usize = 64;
/// Capture time between sweeps of idle connections and stale holes.
const SWEEP_EVERY_US: i64 = 1_000_000;
/// Spare buffers kept for new connections, and the largest capacity kept.
const SPARE_MAX: usize = 64;
const SPARE_MAX_CAPACITY: usize = 64 << 10;

/// One TCP segment as the decoder read it.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

impl std::fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("ts_us", &self.ts_us)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("seq", &self.seq)
            .field("syn", &self.syn)
            .field("fin", &self.fin)
            .field("rst", &self.rst)
            .field("payload", &crate::privacy::Redacted(self.payload))
            .finish()
    }
}

/// What the reassembler did, for the health counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub segments: u64,
    /// SIP messages handed on (over TCP or WebSocket).
    pub messages: u64,
    /// Segments carrying only bytes already seen.
    pub retransmissions: u64,
    /// Segments partly overlapping bytes already seen (the new part is kept).
    pub overlaps: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order: u64,
    /// Holes given up on (a segment the capture never saw).
    pub gaps: u64,
    /// Messages lost in part: across a hole, cut by FIN/RST/idle/eviction, or too large.
    pub broken_messages: u64,
    /// Bytes skipped to find the next SIP start line (mid-stream start, after a hole).
    pub resync_bytes: u64,
    /// CRLF keep-alives skipped (RFC 5626 §3.5.1).
    pub keepalives: u64,
    /// Payload-carrying segments of connections not followed (not SIP, not a SIP port).
    pub not_followed: u64,
    pub connections: u64,
    pub closed: u64,
    pub idle_closed: u64,
    /// Connections dropped to stay within `tcp_max_connections` or `tcp_max_bytes`.
    pub evicted: u64,
    /// Bytes dropped by the per-direction or global caps.
    pub dropped_bytes: u64,
    pub ws_upgrades: u64,
    pub ws_messages: u64,
    /// WebSocket streams abandoned (a frame we cannot follow, or a hole).
    pub ws_lost: u64,
}

/// What one direction's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet: SIP, an HTTP upgrade, WebSocket frames or TLS.
    Detect,
    Sip,
    /// An HTTP upgrade request or response head to skip before WebSocket frames.
    HttpUpgrade,
    Ws,
    /// TLS, or not followable: bytes are dropped unread.
    Ignore,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u32,
    at: usize,
    len: usize,
}

#[derive(Default)]
struct Stream {
    next_seq: Option<u32>,
    /// At a message boundary (after SYN or a framed message); false means resynchronise.
    synced: bool,
    mode: Option<Mode>,
    closed: bool,
    /// In-order bytes not yet framed.
    buf: Vec<u8>,
    held: Vec<Held>,
    held_data: Vec<u8>,
    gap_since: Option<i64>,
    /// A WebSocket message being assembled from its fragments, de-masked.
    ws_msg: Vec<u8>,
    /// Bytes still to discard of a message too large to buffer (its length is known, so
    /// the next message is found without resynchronising).
    skip: usize,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::privacy::Redacted;
        f.debug_struct("Stream")
            .field("next_seq", &self.next_seq)
            .field("synced", &self.synced)
            .field("mode", &self.mode)
            .field("closed", &self.closed)
            .field("buf", &Redacted(&self.buf))
            .field("held", &self.held)
            .field("held_data", &Redacted(&self.held_data))
            .field("gap_since", &self.gap_since)
            .field("ws_msg", &Redacted(&self.ws_msg))
            .field("skip", &self.skip)
            .finish()
    }
}

impl Stream {
    fn buffered(&self) -> usize {
        self.buf.len() + self.held_data.len() + self.ws_msg.len()
    }

    fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Detect)
    }

    /// Whether bytes of a message are waiting (not counting CRLF padding).
    fn has_partial(&self) -> bool {
        !self.ws_msg.is_empty() || self.buf.iter().any(|&b| b != b'\r' && b != b'\n')
    }

    fn clear(&mut self) {
        self.skip = 0;
        self.buf.clear();
        self.held.clear();
        self.held_data.clear();
        self.ws_msg.clear();
        self.gap_since = None;
    }
}

#[derive(Debug, Default)]
struct Conn {
    dirs: [Stream; 2],
    last_ts: i64,
    tls: bool,
    ws: bool,
}

impl Conn {
    fn buffered(&self) -> usize {
        self.dirs[0].buffered() + self.dirs[1].buffered()
    }
}

/// A connection, whichever way a segment goes: the lower address first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    lo: SocketAddr,
    hi: SocketAddr,
}

impl ConnKey {
    /// The key and the direction index of a segment from `src` to `dst`.
    fn of(src: SocketAddr, dst: SocketAddr) -> (ConnKey, usize) {
        if src <= dst {
            (ConnKey { lo: src, hi: dst }, 0)
        } else {
            (ConnKey { lo: dst, hi: src }, 1)
        }
    }
}

/// Per-call context for framing one direction.
struct Ctx<'c> {
    ts_us: i64,
    src: SocketAddr,
    dst: SocketAddr,
    stats: &'c mut TcpStats,
}

/// Everything a direction's bytes can tell the connection.
#[derive(Default)]
struct Seen {
    tls: bool,
    ws_upgrade: bool,
}

/// The TCP connections being followed.
pub struct Reassembler {
    conns: HashMap<ConnKey, Conn>,
    bytes: usize,
    cfg: NetConfig,
    spare: Vec<Vec<u8>>,
    scratch: Vec<(i64, ConnKey)>,
    last_sweep: i64,
    pub tls: TlsPeers,
    pub stats: TcpStats,
}

impl Reassembler {
    pub fn new(cfg: NetConfig) -> Reassembler {
        Reassembler {
            conns: HashMap::new(),
            bytes: 0,
            cfg,
            spare: Vec::new(),
            scratch: Vec::new(),
            last_sweep: i64::MIN,
            tls: TlsPeers::default(),
            stats: TcpStats::default(),
        }
    }

    /// Connections currently followed.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes currently buffered over all connections.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes one segment; hands every SIP message it completes to `on`.
    pub fn segment(&mut self, seg: &Segment<'_>, on: &mut dyn FnMut(&Datagram<'_>)) {
        self.stats.segments += 1;
        if seg.ts_us.saturating_sub(self.last_sweep) >= SWEEP_EVERY_US {
            self.sweep(seg.ts_us, on);
        }
        let (key, dir) = ConnKey::of(seg.src, seg.dst);
        if seg.rst {
            self.close(&key);
            return;
        }
        if !self.conns.contains_key(&key) {
            if !self.should_follow(seg) {
                if !seg.payload.is_empty() {
                    self.stats.not_followed += 1;
                }
                return;
            }
            if self.conns.len() >= self.cfg.tcp_max_connections {
                self.evict(self.cfg.tcp_max_connections.saturating_sub(1), usize::MAX);
            }
            let mut conn = Conn::default();
            for s in &mut conn.dirs {
                s.buf = self.spare.pop().unwrap_or_default();
            }
            self.conns.insert(key, conn);
            self.stats.connections += 1;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_ts = seg.ts_us;
        if conn.tls {
            // Nothing of a TLS connection is read or kept; FINs still free it.
            if seg.fin {
                conn.dirs[dir].closed = true;
                if conn.dirs[0].closed && conn.dirs[1].closed {
                    self.stats.closed += 1;
                    self.remove(&key);
                }
            }
            return;
        }
        let before = conn.buffered();
        let mut ctx = Ctx {
            ts_us: seg.ts_us,
            src: seg.src,
            dst: seg.dst,
            stats: &mut self.stats,
        };
        let mut seen = Seen::default();
        let stream = &mut conn.dirs[dir];
        let mut data_seq = seg.seq;
        if seg.syn {
            // The SYN takes one sequence number; data (if any) follows it (RFC 9293 §3.4).
            // A SYN on a known 4-tuple after a close is a new connection: start afresh.
            data_seq = seg.seq.wrapping_add(1);
            if stream.next_seq != Some(data_seq) {
                stream.clear();
                stream.mode = None;
                stream.closed = false;
            }
            stream.next_seq = Some(data_seq);
            stream.synced = true;
        }
        if !seg.payload.is_empty() && !stream.closed {
            accept(
                stream,
                &mut ctx,
                &self.cfg,
                conn.ws,
                data_seq,
                seg.payload,
                &mut seen,
                on,
            );
            if stream.buffered() > self.cfg.tcp_max_stream_bytes {
                // One message larger than the cap, or a hole held too long: drop, resync.
                ctx.stats.dropped_bytes += stream.buffered() as u64;
                if stream.has_partial() {
                    ctx.stats.broken_messages += 1;
                }
                stream.clear();
                stream.synced = false;
                if stream.mode() == Mode::Ws {
                    stream.mode = Some(Mode::Ignore);
                    ctx.stats.ws_lost += 1;
                }
            }
        }
        if seg.fin && !stream.closed {
            if !stream.held.is_empty() {
                // Nothing more will come to fill the hole: use what came after it.
                skip_hole(stream, &mut ctx, &self.cfg, conn.ws, &mut seen, on);
            }
            if stream.has_partial() {
                ctx.stats.broken_messages += 1;
            }
            stream.clear();
            stream.closed = true;
        }
        if seen.ws_upgrade {
            conn.ws = true;
        }
        if seen.tls && !conn.tls {
            conn.tls = true;
            // The client is the ClientHello's sender, or else the side not on the TLS port.
            let peer = if tls::is_client_hello(seg.payload) || self.cfg.is_tls_port(seg.dst.port())
            {
                seg.src.ip()
            } else {
                seg.dst.ip()
            };
            self.tls.count(peer);
            for s in &mut conn.dirs {
                s.clear();
                s.mode = Some(Mode::Ignore);
            }
        }
        let after = conn.buffered();
        let both_closed = conn.dirs[0].closed && conn.dirs[1].closed;
        self.bytes = self.bytes + after - before;
        if both_closed {
            self.stats.closed += 1;
            self.remove(&key);
        }
        if self.bytes > self.cfg.tcp_max_bytes {
            self.evict(usize::MAX, self.cfg.tcp_max_bytes);
        }
    }

    /// Gives up holes older than the gap timeout and forgets idle connections, at capture
    /// time `now_us`. Called as segments arrive; call it at the end of input too.
    pub fn sweep(&mut self, now_us: i64, on: &mut dyn FnMut(&Datagram<'_>)) {
        self.last_sweep = now_us;
        let gap_us = micros(self.cfg.tcp_gap_timeout);
        let idle_us = micros(self.cfg.tcp_idle_timeout);
        let mut idle = Vec::new();
        for (key, conn) in &mut self.conns {
            if now_us.saturating_sub(conn.last_ts) > idle_us {
                idle.push(*key);
                continue;
            }
            let before = conn.buffered();
            for dir in 0..2 {
                let stream = &mut conn.dirs[dir];
                if stream
                    .gap_since
                    .is_some_and(|t| now_us.saturating_sub(t) > gap_us)
                {
                    let (src, dst) = if dir == 0 {
                        (key.lo, key.hi)
                    } else {
                        (key.hi, key.lo)
                    };
                    let mut ctx = Ctx {
                        ts_us: now_us,
                        src,
                        dst,
                        stats: &mut self.stats,
                    };
                    let mut seen = Seen::default();
                    skip_hole(stream, &mut ctx, &self.cfg, conn.ws, &mut seen, on);
                }
            }
            self.bytes = self.bytes + conn.buffered() - before;
        }
        for key in idle {
            self.stats.idle_closed += 1;
            self.remove(&key);
        }
    }

    /// Forgets every connection (end of input); partial messages are counted as broken.
    pub fn finish(&mut self, now_us: i64, on: &mut dyn FnMut(&Datagram<'_>)) {
        // Holes still open at the end will never fill: use what came after them.
        let gap = self.cfg.tcp_gap_timeout;
        self.cfg.tcp_gap_timeout = std::time::Duration::ZERO;
        self.sweep(now_us.saturating_add(1), on);
        self.cfg.tcp_gap_timeout = gap;
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    fn should_follow(&self, seg: &Segment<'_>) -> bool {
        let on_port = self.cfg.is_sip_port(seg.src.port()) || self.cfg.is_sip_port(seg.dst.port());
        if on_port {
            return seg.syn || !seg.payload.is_empty();
        }
        if !self.cfg.heuristic || seg.payload.is_empty() {
            return false;
        }
        // Any other port: only a connection whose bytes start like SIP or a WebSocket upgrade,
        // so other TCP traffic costs no state.
        let p = &seg.payload[framing::leading_crlf(seg.payload)..];
        framing::starts_with_start_line(p)
            || matches!(websocket::http_upgrade(seg.payload), Http::Upgrade(_))
    }

    fn close(&mut self, key: &ConnKey) {
        if let Some(conn) = self.conns.get(key) {
            let partial = conn.dirs.iter().filter(|s| s.has_partial()).count();
            self.stats.broken_messages += partial as u64;
            self.stats.closed += 1;
            self.remove(key);
        }
    }

    fn remove(&mut self, key: &ConnKey) {
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(conn.buffered());
        for s in conn.dirs {
            for mut b in [s.buf, s.held_data, s.ws_msg] {
                if self.spare.len() < SPARE_MAX
                    && b.capacity() > 0
                    && b.capacity() <= SPARE_MAX_CAPACITY
                {
                    b.clear();
                    self.spare.push(b);
                }
            }
        }
    }

    /// Drops the least recently active connections until at most `max_conns` remain and at
    /// most `max_bytes` are buffered. Connections at the cap are dropped a sixteenth at a
    /// time, so a flood of new connections costs one sort per batch, not per segment.
    fn evict(&mut self, max_conns: usize, max_bytes: usize) {
        let target_conns = if max_conns == usize::MAX {
            max_conns
        } else {
            max_conns.saturating_sub(self.cfg.tcp_max_connections / 16)
        };
        self.scratch.clear();
        self.scratch
            .extend(self.conns.iter().map(|(k, c)| (c.last_ts, *k)));
        self.scratch.sort_unstable_by_key(|(ts, _)| *ts);
        let victims = std::mem::take(&mut self.scratch);
        for (_, key) in &victims {
            if self.conns.len() <= target_conns && self.bytes <= max_bytes {
                break;
            }
            if let Some(conn) = self.conns.get(key) {
                self.stats.dropped_bytes += conn.buffered() as u64;
                self.stats.broken_messages +=
                    conn.dirs.iter().filter(|s| s.has_partial()).count() as u64;
            }
            self.stats.evicted += 1;
            self.remove(key);
        }
        self.scratch = victims;
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Puts a segment's bytes in sequence order and frames what became contiguous.
#[allow(clippy::too_many_arguments)]
fn accept(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    seq: u32,
    payload: &[u8],
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    let Some(next) = stream.next_seq else {
        // Seen from its middle: these are the first bytes; resynchronise on a start line.
        stream.next_seq = Some(seq);
        stream.synced = false;
        deliver(stream, ctx, cfg, ws, payload, seen, on);
        return;
    };
    // Sequence numbers wrap (RFC 9293 §3.4): compare as a signed distance.
    let off = seq.wrapping_sub(next) as i32;
    if off < 0 {
        let dup = off.unsigned_abs() as usize;
        if dup >= payload.len() {
            ctx.stats.retransmissions += 1;
            return;
        }
        ctx.stats.overlaps += 1;
        deliver(stream, ctx, cfg, ws, &payload[dup..], seen, on);
    } else if off == 0 {
        deliver(stream, ctx, cfg, ws, payload, seen, on);
    } else {
        let ahead = off as usize;
        if ahead > cfg.tcp_max_stream_bytes {
            // Far ahead: the capture lost a lot. Nothing held could fill it; start over here.
            ctx.stats.gaps += 1;
            lose_partial(stream, ctx);
            stream.held.clear();
            stream.held_data.clear();
            stream.gap_since = None;
            stream.next_seq = Some(seq);
            stream.synced = false;
            deliver(stream, ctx, cfg, ws, payload, seen, on);
            return;
        }
        if stream
            .held
            .iter()
            .any(|h| h.seq == seq && h.len >= payload.len())
        {
            ctx.stats.retransmissions += 1;
            return;
        }
        ctx.stats.out_of_order += 1;
        stream.held.push(Held {
            seq,
            at: stream.held_data.len(),
            len: payload.len(),
        });
        stream.held_data.extend_from_slice(payload);
        stream.gap_since.get_or_insert(ctx.ts_us);
        if stream.held.len() > MAX_HELD_SEGMENTS || stream.buffered() > cfg.tcp_max_stream_bytes {
            skip_hole(stream, ctx, cfg, ws, seen, on);
        }
    }
}

/// Counts the message cut by a hole or a cap, and drops its bytes.
fn lose_partial(stream: &mut Stream, ctx: &mut Ctx<'_>) {
    if stream.has_partial() {
        ctx.stats.broken_messages += 1;
    }
    ctx.stats.dropped_bytes += (stream.buf.len() + stream.ws_msg.len()) as u64;
    stream.buf.clear();
    stream.ws_msg.clear();
    if stream.mode() == Mode::Ws {
        // WebSocket frames cannot be found again in the middle of a stream.
        stream.mode = Some(Mode::Ignore);
        ctx.stats.ws_lost += 1;
    }
}

/// Gives up the hole before the earliest held segment: the message across it is broken,
/// the held bytes are used from there on, resynchronised on the next start line.
fn skip_hole(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    let Some(next) = stream.next_seq else {
        return;
    };
    let Some(first) = stream
        .held
        .iter()
        .map(|h| h.seq)
        .min_by_key(|s| s.wrapping_sub(next) as i32)
    else {
        stream.gap_since = None;
        return;
    };
    ctx.stats.gaps += 1;
    lose_partial(stream, ctx);
    stream.next_seq = Some(first);
    stream.synced = false;
    drain_held(stream, ctx, cfg, ws, seen, on);
}

/// Appends in-order bytes, then uses every held segment that became contiguous.
fn deliver(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    data: &[u8],
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    if let Some(next) = stream.next_seq {
        stream.next_seq = Some(next.wrapping_add(data.len() as u32));
    }
    feed(stream, ctx, cfg, ws, data, seen, on);
    if !stream.held.is_empty() {
        drain_held(stream, ctx, cfg, ws, seen, on);
    }
}

fn drain_held(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    let held_data = std::mem::take(&mut stream.held_data);
    while let Some(next) = stream.next_seq {
        let Some((i, off)) = stream
            .held
            .iter()
            .enumerate()
            .map(|(i, h)| (i, h.seq.wrapping_sub(next) as i32))
            .min_by_key(|(_, off)| *off)
        else {
            break;
        };
        if off > 0 {
            break;
        }
        let h = stream.held.swap_remove(i);
        let dup = off.unsigned_abs() as usize;
        if dup < h.len {
            let bytes = &held_data[h.at + dup..h.at + h.len];
            stream.next_seq = Some(next.wrapping_add(bytes.len() as u32));
            feed(stream, ctx, cfg, ws, bytes, seen, on);
        }
    }
    stream.held_data = held_data;
    if stream.held.is_empty() {
        stream.held_data.clear();
        stream.gap_since = None;
    }
}

/// Frames in-order bytes: straight from `data` when nothing is pending (no copy), else
/// after appending to the direction's buffer. What is left waits in the buffer.
fn feed(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    data: &[u8],
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    let mut data = data;
    if stream.skip > 0 {
        let n = stream.skip.min(data.len());
        stream.skip -= n;
        ctx.stats.dropped_bytes += n as u64;
        data = &data[n..];
    }
    if stream.buf.is_empty() {
        let used = consume(stream, ctx, cfg, ws, data, seen, on);
        if stream.mode() != Mode::Ignore {
            stream.buf.extend_from_slice(&data[used..]);
        }
    } else {
        stream.buf.extend_from_slice(data);
        let buf = std::mem::take(&mut stream.buf);
        let used = consume(stream, ctx, cfg, ws, &buf, seen, on);
        stream.buf = buf;
        if stream.mode() == Mode::Ignore {
            stream.buf.clear();
        } else {
            stream.buf.drain(..used);
        }
    }
}

/// Reads as many whole units (SIP messages, HTTP heads, WebSocket frames) as `data` holds
/// from its start; returns the bytes used.
fn consume(
    stream: &mut Stream,
    ctx: &mut Ctx<'_>,
    cfg: &NetConfig,
    ws: bool,
    data: &[u8],
    seen: &mut Seen,
    on: &mut dyn FnMut(&Datagram<'_>),
) -> usize {
    let mut at = 0;
    loop {
        let rest = &data[at..];
        if rest.is_empty() {
            return at;
        }
        match stream.mode() {
            Mode::Detect => {
                let Some(mode) = detect(rest, ctx, cfg, ws) else {
                    return at;
                };
                if mode == Mode::Ignore && tls::looks_like_tls(rest) {
                    seen.tls = true;
                }
                stream.mode = Some(mode);
            }
            Mode::Ignore => return data.len(),
            Mode::HttpUpgrade => match websocket::http_upgrade(rest) {
                Http::Upgrade(n) => {
                    if rest.starts_with(b"GET ") {
                        ctx.stats.ws_upgrades += 1;
                        seen.ws_upgrade = true;
                    }
                    at += n;
                    stream.mode = Some(Mode::Ws);
                }
                Http::Other => stream.mode = Some(Mode::Ignore),
                Http::NeedMore => return at,
            },
            Mode::Ws => match websocket::parse_frame(rest) {
                Parsed::Frame(h) => {
                    if !h.is_control() {
                        websocket::append_payload(&mut stream.ws_msg, rest, &h);
                        if h.fin {
                            emit(ctx, Transport::Ws, &stream.ws_msg, on);
                            ctx.stats.ws_messages += 1;
                            stream.ws_msg.clear();
                        }
                    }
                    at += h.total_len();
                }
                Parsed::NeedMore => return at,
                Parsed::Bad => {
                    ctx.stats.ws_lost += 1;
                    stream.mode = Some(Mode::Ignore);
                }
            },
            Mode::Sip => {
                let crlf = framing::leading_crlf(rest);
                if crlf > 0 {
                    if stream.synced {
                        ctx.stats.keepalives += 1;
                    }
                    at += crlf;
                    continue;
                }
                if !stream.synced {
                    match framing::find_start_line(rest) {
                        Some(skip) => {
                            ctx.stats.resync_bytes += skip as u64;
                            at += skip;
                            stream.synced = true;
                            continue;
                        }
                        None => {
                            ctx.stats.resync_bytes += rest.len() as u64;
                            return data.len();
                        }
                    }
                }
                match framing::frame(rest) {
                    Frame::Complete(n) => {
                        emit(ctx, Transport::Tcp, &rest[..n], on);
                        at += n;
                    }
                    Frame::NeedMore(Some(total)) if total > cfg.tcp_max_stream_bytes => {
                        // Too large to buffer: count it and skip exactly its bytes.
                        ctx.stats.broken_messages += 1;
                        ctx.stats.dropped_bytes += rest.len() as u64;
                        stream.skip = total - rest.len();
                        return data.len();
                    }
                    Frame::NeedMore(_) => return at,
                    Frame::Bad => {
                        // Not a message we can frame: skip its first line and look again.
                        stream.synced = false;
                        let line = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                        ctx.stats.resync_bytes += line as u64;
                        at += line;
                    }
                }
            }
        }
    }
}

/// Decides what a direction carries from its first bytes; `None` to wait for more.
fn detect(rest: &[u8], ctx: &Ctx<'_>, cfg: &NetConfig, ws: bool) -> Option<Mode> {
    if framing::leading_crlf(rest) > 0 || framing::starts_with_start_line(rest) {
        // CRLF keep-alives (RFC 5626 §3.5.1) only exist on SIP flows.
        return Some(Mode::Sip);
    }
    if rest.len() < 5 {
        return None;
    }
    if tls::looks_like_tls(rest) {
        return Some(Mode::Ignore);
    }
    if websocket::starts_like_http(rest) {
        return Some(Mode::HttpUpgrade);
    }
    let ws_port = cfg.is_ws_port(ctx.src.port()) || cfg.is_ws_port(ctx.dst.port());
    if (ws || ws_port) && websocket::looks_like_frame(rest) {
        return Some(Mode::Ws);
    }
    Some(Mode::Sip)
}

fn emit(
    ctx: &mut Ctx<'_>,
    transport: Transport,
    payload: &[u8],
    on: &mut dyn FnMut(&Datagram<'_>),
) {
    ctx.stats.messages += 1;
    on(&Datagram {
        ts_us: ctx.ts_us,
        src: ctx.src,
        dst: ctx.dst,
        transport,
        payload,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:40000";
    const B: &str = "10.0.0.2:5060";
    const ISN: u32 = 1000;

    #[test]
    fn a_streams_debug_output_shows_buffer_lengths_never_their_bytes() {
        let s = Stream {
            buf: b"canary-buf".to_vec(),
            held_data: b"canary-held".to_vec(),
            ws_msg: b"canary-ws".to_vec(),
            ..Stream::default()
        };
        let shown = format!("{s:?}");
        assert!(
            shown.contains("<10 bytes>") && !shown.contains("canary"),
            "{shown}"
        );
    }

    fn invite(n: u32) -> Vec<u8> {
        let body = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        format!(
            "INVITE sip:bob@b.example SIP/2.0\r\nCall-ID: call-{n}\r\nCSeq: 1 INVITE\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A reassembler and the messages it handed on.
    struct Harness {
        r: Reassembler,
        got: Vec<(Vec<u8>, Transport, i64)>,
    }

    impl Harness {
        fn new() -> Harness {
            Harness::with(NetConfig::default())
        }

        fn with(cfg: NetConfig) -> Harness {
            Harness {
                r: Reassembler::new(cfg),
                got: Vec::new(),
            }
        }

        fn send(&mut self, ts: i64, src: &str, dst: &str, seq: u32, flags: &str, payload: &[u8]) {
            let seg = Segment {
                ts_us: ts,
                src: src.parse().expect("src"),
                dst: dst.parse().expect("dst"),
                seq,
                syn: flags.contains('S'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
                payload,
            };
            let got = &mut self.got;
            self.r.segment(&seg, &mut |d| {
                got.push((d.payload.to_vec(), d.transport, d.ts_us))
            });
        }

        /// A SYN from A, then `stream` from A to B cut into `cuts`.
        fn stream(&mut self, stream: &[u8], cuts: &[usize]) {
            self.send(0, A, B, ISN, "S", b"");
            let mut bounds = vec![0];
            bounds.extend_from_slice(cuts);
            bounds.push(stream.len());
            for (i, w) in bounds.windows(2).enumerate() {
                self.send(
                    i as i64 + 1,
                    A,
                    B,
                    ISN + 1 + w[0] as u32,
                    "",
                    &stream[w[0]..w[1]],
                );
            }
        }

        fn messages(&self) -> Vec<Vec<u8>> {
            self.got.iter().map(|(m, ..)| m.clone()).collect()
        }
    }

    #[test]
    fn two_messages_in_one_segment_are_handed_on_separately() {
        let mut h = Harness::new();
        let mut s = invite(1);
        s.extend(invite(2));
        h.stream(&s, &[]);
        assert_eq!(h.messages(), vec![invite(1), invite(2)]);
    }

    #[test]
    fn a_message_split_at_every_byte_is_reassembled() {
        let m = invite(1);
        for cut in 1..m.len() {
            let mut h = Harness::new();
            h.stream(&m, &[cut]);
            assert_eq!(h.messages(), vec![m.clone()], "split at {cut}");
        }
    }

    #[test]
    fn a_message_completes_at_the_timestamp_of_its_last_segment() {
        let mut h = Harness::new();
        h.stream(&invite(1), &[10, 20]);
        assert_eq!(h.got[0].2, 3);
    }

    #[test]
    fn out_of_order_segments_are_put_back_in_sequence() {
        let m = invite(1);
        let mut h = Harness::new();
        h.send(0, A, B, ISN, "S", b"");
        h.send(1, A, B, ISN + 1 + 40, "", &m[40..]);
        h.send(2, A, B, ISN + 1 + 20, "", &m[20..40]);
        assert!(h.got.is_empty());
        h.send(3, A, B, ISN + 1, "", &m[..20]);
        assert_eq!(h.messages(), vec![m]);
        assert_eq!(h.r.stats.out_of_order, 2);
    }

    #[test]
    fn a_retransmitted_segment_gives_no_second_message() {
        let m = invite(1);
        let mut h = Harness::new();
        h.stream(&m, &[]);
        h.send(5, A, B, ISN + 1, "", &m);
        assert_eq!(h.messages(), vec![m]);
        assert_eq!(h.r.stats.retransmissions, 1);
    }

    #[test]
    fn overlapping_segments_keep_only_the_new_bytes() {
        let m = invite(1);
        let mut h = Harness::new();
        h.send(0, A, B, ISN, "S", b"");
        h.send(1, A, B, ISN + 1, "", &m[..30]);
        h.send(2, A, B, ISN + 1 + 10, "", &m[10..]);
        assert_eq!(h.messages(), vec![m]);
        assert_eq!(h.r.stats.overlaps, 1);
    }

    #[test]
    fn a_stream_seen_from_its_middle_resynchronises_on_the_next_start_line() {
        let first = invite(1);
        let mut s = first[50..].to_vec();
        s.extend(invite(2));
        let mut h = Harness::new();
        h.send(1, A, B, 777, "", &s);
        assert_eq!(h.messages(), vec![invite(2)]);
        assert!(h.r.stats.resync_bytes > 0);
    }

    #[test]
    fn a_missing_segment_breaks_one_message_and_the_next_is_still_read() {
        let (m1, m2) = (invite(1), invite(2));
        let mut h = Harness::new();
        h.send(0, A, B, ISN, "S", b"");
        h.send(1, A, B, ISN + 1, "", &m1[..30]);
        // m1[30..60] is never captured.
        let mut rest = m1[60..].to_vec();
        rest.extend(&m2);
        h.send(2, A, B, ISN + 1 + 60, "", &rest);
        // Past the gap timeout, the hole is given up at the next sweep.
        h.send(10_000_000, A, B, ISN + 1 + 60 + rest.len() as u32, "", b"");
        assert_eq!(h.messages(), vec![m2]);
        assert_eq!(h.r.stats.broken_messages, 1);
        assert_eq!(h.r.stats.gaps, 1);
    }

    #[test]
    fn keepalive_crlfs_between_messages_are_ignored() {
        let mut s = b"\r\n\r\n".to_vec();
        s.extend(invite(1));
        s.extend(b"\r\n");
        s.extend(invite(2));
        let mut h = Harness::new();
        h.stream(&s, &[2, 5]);
        assert_eq!(h.messages(), vec![invite(1), invite(2)]);
        assert!(h.r.stats.keepalives >= 2);
    }

    #[test]
    fn sequence_numbers_wrapping_past_zero_are_followed() {
        let m = invite(1);
        let isn = u32::MAX - 10;
        let mut h = Harness::new();
        h.send(0, A, B, isn, "S", b"");
        h.send(1, A, B, isn.wrapping_add(1), "", &m[..30]);
        h.send(2, A, B, isn.wrapping_add(31), "", &m[30..]);
        assert_eq!(h.messages(), vec![m]);
    }

    #[test]
    fn fin_from_both_sides_frees_the_connection() {
        let mut h = Harness::new();
        h.stream(&invite(1), &[]);
        let end = ISN + 1 + invite(1).len() as u32;
        h.send(5, A, B, end, "F", b"");
        h.send(6, B, A, 5000, "F", b"");
        assert_eq!(h.r.connections(), 0);
        assert_eq!(h.r.bytes(), 0);
    }

    #[test]
    fn rst_frees_the_connection_and_counts_its_partial_message() {
        let mut h = Harness::new();
        h.send(0, A, B, ISN, "S", b"");
        h.send(1, A, B, ISN + 1, "", &invite(1)[..40]);
        h.send(2, B, A, 9, "R", b"");
        assert_eq!(h.r.connections(), 0);
        assert_eq!(h.r.stats.broken_messages, 1);
    }

    #[test]
    fn an_idle_connection_is_forgotten_after_the_idle_timeout() {
        let mut h = Harness::new();
        h.send(0, A, B, ISN, "S", b"");
        h.send(1, A, B, ISN + 1, "", &invite(1)[..40]);
        h.send(700_000_000, "10.9.9.9:1", B, 1, "S", b"");
        assert_eq!(h.r.stats.idle_closed, 1);
        assert_eq!(h.r.connections(), 1);
    }

    #[test]
    fn a_message_over_the_stream_cap_is_dropped_and_the_next_one_read() {
        let cfg = NetConfig {
            tcp_max_stream_bytes: 200,
            ..NetConfig::default()
        };
        let mut h = Harness::with(cfg);
        let big = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n".to_vec();
        let mut s = big.clone();
        s.extend(vec![b'x'; 5000]);
        s.extend(invite(2));
        let cuts: Vec<usize> = (1..s.len() / 100).map(|i| i * 100).collect();
        h.stream(&s, &cuts);
        assert_eq!(h.messages(), vec![invite(2)]);
        assert!(h.r.stats.dropped_bytes > 0);
    }

    #[test]
    fn tls_on_port_5061_is_counted_per_client_and_not_buffered() {
        let mut h = Harness::new();
        let hello = [22, 3, 1, 0, 100, 1, 0, 0, 96, 3, 3];
        h.send(0, "192.0.2.7:50000", "198.51.100.1:5061", 1, "S", b"");
        h.send(1, "192.0.2.7:50000", "198.51.100.1:5061", 2, "", &hello);
        h.send(
            2,
            "198.51.100.1:5061",
            "192.0.2.7:50000",
            1,
            "",
            &[22, 3, 3, 0, 5, 2],
        );
        assert_eq!(h.r.tls.connections, 1);
        assert_eq!(h.r.tls.by_peer(), vec![("192.0.2.7".parse().unwrap(), 1)]);
        assert_eq!(h.r.bytes(), 0);
        assert!(h.got.is_empty());
        h.send(3, "192.0.2.7:50000", "198.51.100.1:5061", 13, "F", b"");
        h.send(4, "198.51.100.1:5061", "192.0.2.7:50000", 7, "F", b"");
        assert_eq!(h.r.connections(), 0, "FINs free a TLS connection");
    }

    #[test]
    fn plain_sip_on_the_tls_port_is_still_read() {
        let mut h = Harness::new();
        h.send(1, A, "10.0.0.2:5061", 1, "", &invite(1));
        assert_eq!(h.messages(), vec![invite(1)]);
        assert_eq!(h.r.tls.connections, 0);
    }

    fn ws_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    #[test]
    fn sip_over_websocket_is_unmasked_and_reassembled_from_fragments() {
        let (c, s) = ("10.0.0.1:50000", "10.0.0.2:8080");
        let m = invite(1);
        let mut h = Harness::new();
        h.send(0, c, s, 10, "S", b"");
        h.send(0, s, c, 20, "S", b"");
        let get = b"GET /ws HTTP/1.1\r\nHost: pbx\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
        h.send(1, c, s, 11, "", get);
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
        h.send(2, s, c, 21, "", resp);
        // The INVITE as a text frame, then a continuation, masked; split across segments.
        let mut frames = ws_frame(false, 1, &m[..50], Some([1, 2, 3, 4]));
        frames.extend(ws_frame(true, 0, &m[50..], Some([5, 6, 7, 8])));
        let at = 11 + get.len() as u32;
        h.send(3, c, s, at, "", &frames[..30]);
        h.send(4, c, s, at + 30, "", &frames[30..]);
        // A 200 from the server, unmasked, binary.
        let ok = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        h.send(
            5,
            s,
            c,
            21 + resp.len() as u32,
            "",
            &ws_frame(true, 2, ok, None),
        );
        assert_eq!(h.messages(), vec![m, ok.to_vec()]);
        assert!(h.got.iter().all(|(_, t, _)| *t == Transport::Ws));
        assert_eq!(h.r.stats.ws_upgrades, 1);
    }

    #[test]
    fn other_tcp_traffic_on_non_sip_ports_holds_no_state() {
        let mut h = Harness::new();
        h.send(0, "10.0.0.1:40000", "10.0.0.2:443", 1, "S", b"");
        h.send(
            1,
            "10.0.0.1:40000",
            "10.0.0.2:443",
            2,
            "",
            b"GET / HTTP/1.1\r\n\r\n",
        );
        assert_eq!(h.r.connections(), 0);
        assert_eq!(h.r.stats.not_followed, 1);
    }

    #[test]
    fn without_the_heuristic_sip_on_other_ports_is_not_followed() {
        let cfg = NetConfig {
            heuristic: false,
            ..NetConfig::default()
        };
        let mut h = Harness::with(cfg);
        h.send(1, "10.0.0.1:40000", "10.0.0.2:6060", 1, "", &invite(1));
        assert!(h.got.is_empty());
        assert_eq!(h.r.connections(), 0);
    }

    #[test]
    fn connections_beyond_the_cap_evict_the_least_recently_active() {
        let cfg = NetConfig {
            tcp_max_connections: 100,
            ..NetConfig::default()
        };
        let mut h = Harness::with(cfg);
        for i in 0..1000u32 {
            let src = format!("10.1.{}.{}:40000", i / 256, i % 256);
            h.send(i64::from(i), &src, B, 1, "S", b"");
            assert!(h.r.connections() <= 100);
        }
        assert!(h.r.stats.evicted >= 900);
        // The newest is still followed.
        h.send(2000, "10.1.3.231:40000", B, 2, "", &invite(1));
        assert_eq!(h.messages(), vec![invite(1)]);
    }
}
