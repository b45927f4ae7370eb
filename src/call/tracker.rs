//! Follows INVITE dialogs and MESSAGE transactions and turns them into records.
//!
//! Rules are those of docs/call-model.md; each is pinned by a test below named after it.
//! Memory is bounded by `max_open_dialogs` (oldest closed first, counted) and by timers
//! that run on message time. Looking a message up never allocates: keys are built in a
//! reused scratch buffer; only a new dialog or transaction allocates its record fields.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::net::Transport;
use crate::sip::{self, Method, SipMessage, StartLine};

use super::record::{CallRecord, Disposition, EndedBy, MessageRecord, Record, Side, TimeoutReason};

const SECOND: i64 = 1_000_000;

/// Timers and limits of the tracker. Durations are microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Open dialogs (and pending MESSAGE transactions) kept at most; past it the oldest
    /// is closed as a timeout with reason `evicted`.
    pub max_open_dialogs: usize,
    /// RFC 3261 Timer B (64*T1): an INVITE with no response is closed this long after its
    /// last retransmission. Also the wait for a retry after a 401/407/422 challenge and
    /// RFC 3261 Timer F for MESSAGE.
    pub transaction_timeout: i64,
    /// An INVITE with a provisional but no final response is closed this long after the
    /// last provisional.
    pub ring_timeout: i64,
    /// An answered call with no BYE and no session timer is closed at this duration.
    pub max_call_duration: i64,
    /// A finished dialog stays this long to take the same responses seen on other hops
    /// and retransmissions before its record is emitted.
    pub settle: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_open_dialogs: 100_000,
            transaction_timeout: 32 * SECOND,
            ring_timeout: 180 * SECOND,
            max_call_duration: 4 * 3600 * SECOND,
            settle: 5 * SECOND,
        }
    }
}

/// Where and when a message was seen.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// Interface, capture file or log file name.
    pub source: &'a Arc<str>,
}

/// Counters of what the tracker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub messages: u64,
    /// In-dialog messages and responses for which no dialog was known (capture started
    /// mid-call, or the dialog already ended).
    pub orphans: u64,
    /// Retransmitted or other-hop copies of an initial INVITE or MESSAGE.
    pub duplicates: u64,
    pub calls: u64,
    pub text_messages: u64,
    pub evicted: u64,
    /// Initial INVITEs and MESSAGEs not followed: a Call-ID or tag over 256 bytes.
    pub oversized: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum State {
    /// INVITE sent, no final response on any hop.
    Proceeding,
    /// The last final response was a challenge (401/407) or 422; a retry may follow.
    Challenged,
    /// A 2xx was seen.
    Confirmed,
    /// Finished (BYE, final non-2xx): waiting `settle` for other hops' copies.
    Ended,
}

/// One open dialog. Serialised (JSON) only to carry open calls across a daemon restart.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Dialog {
    order: (i64, u64),
    state: State,
    source: Arc<str>,
    invite_cseq: u32,
    /// CSeq of the attempt's first initial INVITE: a 2xx to any initial INVITE from
    /// this one to `invite_cseq` answers the call (some UAs send several at once).
    first_invite_cseq: u32,
    invite_branch: Option<Box<[u8]>>,
    caller_tag: Box<[u8]>,
    /// (src, dst) of the first sighting of the initial INVITE: the caller's hop.
    caller_hop: (SocketAddr, SocketAddr),
    transport: Transport,
    started_at: i64,
    ringing_at: Option<i64>,
    answered_at: Option<i64>,
    pdd_at: Option<i64>,
    last_invite_at: i64,
    last_provisional_at: Option<i64>,
    last_seen_at: i64,
    /// First final response to the current initial INVITE, on any hop: (time, code).
    final_any: Option<(i64, u16)>,
    /// The code of the final response the caller's hop carried.
    final_caller_hop: Option<u16>,
    cancel_at: Option<i64>,
    bye: Option<(i64, Side)>,
    ended_at: Option<i64>,
    timeout: Option<TimeoutReason>,
    reason_cause: Option<u16>,
    session_expires: Option<u32>,
    last_refresh_at: i64,
    caller: String,
    caller_domain: String,
    caller_name: Option<String>,
    callee: String,
    callee_domain: String,
    asserted_identity: Option<String>,
    user_agent: Option<String>,
    server: Option<String>,
    server_from_trying: bool,
    offer_codecs: String,
    answer_codecs: String,
    /// Changed since the last [`Tracker::changes`] (not saved: a resumed dialog is as the
    /// store holds it).
    #[serde(skip)]
    dirty: bool,
}

impl Dialog {
    /// The INVITE retried after a challenge: the same call goes on with a new transaction.
    fn retry(&mut self, ts: i64, msg: &SipMessage<'_>) {
        self.state = State::Proceeding;
        self.invite_cseq = msg.cseq.seq;
        self.invite_branch = msg.via.and_then(|v| v.branch).map(Into::into);
        self.final_any = None;
        self.final_caller_hop = None;
        self.ended_at = None;
        self.last_invite_at = ts;
        self.last_seen_at = ts;
    }
}

#[derive(Debug)]
struct TextMessage {
    order: (i64, u64),
    record: MessageRecord,
    caller_hop: (SocketAddr, SocketAddr),
    final_any: Option<(i64, u16)>,
    final_caller_hop: Option<u16>,
    dirty: bool,
}

/// A MESSAGE transaction's saved form (a followed log's checkpoints carry it, so a
/// kill -9 while a MESSAGE awaits its answer loses nothing). Fields that mean what a
/// dialog's mean have its names (`caller`, `callee`, `caller_hop`), so the store's
/// pseudonymiser treats both alike; addresses are the caller's hop's.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedText {
    /// Tells a saved MESSAGE from a saved dialog (always true).
    text_message: bool,
    order: (i64, u64),
    call_id: String,
    cseq: u32,
    sent_at: i64,
    caller: String,
    caller_domain: String,
    callee: String,
    callee_domain: String,
    content_type: Option<String>,
    size_bytes: u64,
    transport: Transport,
    source: String,
    caller_hop: (SocketAddr, SocketAddr),
    final_any: Option<(i64, u16)>,
    final_caller_hop: Option<u16>,
}

impl SavedText {
    fn of(t: &TextMessage) -> SavedText {
        let r = &t.record;
        SavedText {
            text_message: true,
            order: t.order,
            call_id: r.call_id.clone(),
            cseq: r.cseq,
            sent_at: r.sent_at,
            caller: r.sender.clone(),
            caller_domain: r.sender_domain.clone(),
            callee: r.recipient.clone(),
            callee_domain: r.recipient_domain.clone(),
            content_type: r.content_type.clone(),
            size_bytes: r.size_bytes,
            transport: r.transport,
            source: r.source.clone(),
            caller_hop: t.caller_hop,
            final_any: t.final_any,
            final_caller_hop: t.final_caller_hop,
        }
    }

    fn into_text(self) -> TextMessage {
        let (src, dst) = self.caller_hop;
        TextMessage {
            order: self.order,
            record: MessageRecord {
                call_id: self.call_id,
                cseq: self.cseq,
                sent_at: self.sent_at,
                answered_at: None,
                final_status: None,
                sender: self.caller,
                sender_domain: self.caller_domain,
                recipient: self.callee,
                recipient_domain: self.callee_domain,
                content_type: self.content_type,
                size_bytes: self.size_bytes,
                src_ip: src.ip(),
                src_port: src.port(),
                dst_ip: dst.ip(),
                dst_port: dst.port(),
                transport: self.transport,
                source: self.source,
            },
            caller_hop: self.caller_hop,
            final_any: self.final_any,
            final_caller_hop: self.final_caller_hop,
            dirty: false,
        }
    }
}

impl TextMessage {
    /// Its saved form, as [`Tracker::resume`] reads it back.
    fn state(&self) -> serde_json::Result<String> {
        serde_json::to_string(&SavedText::of(self))
    }
}

/// A saved open entry, as [`Tracker::resume`] reads it back.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Saved {
    Text(Box<SavedText>),
    Dialog(Box<Dialog>),
}

/// What changed in the open entries since the last [`Tracker::changes`]: the states to
/// save (key, state) and the keys whose entry is gone (written as a record, or evicted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenChanges {
    pub upsert: Vec<(Vec<u8>, String)>,
    pub remove: Vec<Vec<u8>>,
}

/// Follows dialogs; see the module docs.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    dialogs: HashMap<Box<[u8]>, Dialog>,
    texts: HashMap<Box<[u8]>, TextMessage>,
    /// (started_at, sequence) → key, for closing the oldest first.
    order: BTreeMap<(i64, u64), Box<[u8]>>,
    seq: u64,
    now: i64,
    next_sweep: i64,
    scratch: Vec<u8>,
    expired: Vec<Box<[u8]>>,
    /// Records made where no output was at hand (calls evicted while resuming), handed
    /// on with the next output.
    deferred: Vec<Record>,
    /// Keys of entries gone since the last [`Tracker::changes`]; `None` unless
    /// [`Tracker::track_changes`] was called (a capture never asks, so never grows it).
    gone: Option<Vec<Box<[u8]>>>,
    stats: TrackerStats,
}

/// Longest Call-ID and tag a dialog is made for: real ones are tens of bytes, and each
/// open dialog holds its key twice, so the cap bounds memory by bytes, not just count.
const MAX_ID: usize = 256;
/// Longest text kept of a header (names, user agents, URIs' parts).
const MAX_TEXT: usize = 256;
/// Most codec names kept per call, and their most bytes.
const MAX_CODECS: usize = 16;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)])
        .trim()
        .to_string()
}

fn opt_text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(text).filter(|s| !s.is_empty())
}

fn dialog_key<'k>(scratch: &'k mut Vec<u8>, call_id: &[u8], tag: &[u8]) -> &'k [u8] {
    scratch.clear();
    scratch.extend_from_slice(call_id);
    scratch.push(0);
    scratch.extend_from_slice(tag);
    scratch
}

fn text_key<'k>(scratch: &'k mut Vec<u8>, call_id: &[u8], cseq: u32) -> &'k [u8] {
    scratch.clear();
    scratch.extend_from_slice(call_id);
    scratch.push(0);
    scratch.extend_from_slice(&cseq.to_be_bytes());
    scratch
}

/// Appends SDP codec names to a comma-separated list, skipping names already there.
fn add_codecs(list: &mut String, body: &[u8]) {
    for name in sip::sdp::codecs(body) {
        if list.len() >= MAX_TEXT || list.split(',').count() >= MAX_CODECS {
            break;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.is_empty() || list.split(',').any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(name);
    }
}

fn disposition(code: Option<u16>) -> Disposition {
    match code {
        Some(200..=299) => Disposition::Answered,
        Some(486 | 600) => Disposition::Busy,
        Some(487 | 408 | 480) => Disposition::NoAnswer,
        _ => Disposition::Failed,
    }
}

/// Final responses after which the same INVITE is normally retried with a higher CSeq
/// in the same dialog attempt: authentication challenges (RFC 3261 §22.2-22.3) and
/// Session Interval Too Small (RFC 4028 §6).
fn is_retryable(code: u16) -> bool {
    matches!(code, 401 | 407 | 422)
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        Tracker {
            cfg,
            dialogs: HashMap::new(),
            texts: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            now: i64::MIN,
            next_sweep: i64::MIN,
            scratch: Vec::with_capacity(256),
            expired: Vec::new(),
            deferred: Vec::new(),
            gone: None,
            stats: TrackerStats::default(),
        }
    }

    /// Keeps what [`Tracker::changes`] needs: a followed log saves only the entries that
    /// changed with each checkpoint, not every open call each time. Call before `resume`.
    pub fn track_changes(&mut self) {
        self.gone.get_or_insert_with(Vec::new);
    }

    /// New timers and limits (a reload); open dialogs keep their state.
    pub fn set_config(&mut self, cfg: TrackerConfig) {
        self.cfg = cfg;
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// Dialogs and MESSAGE transactions currently held.
    pub fn open(&self) -> usize {
        self.dialogs.len() + self.texts.len()
    }

    /// Takes one message; finished records are pushed to `out`.
    pub fn on_message(&mut self, meta: &Meta<'_>, msg: &SipMessage<'_>, out: &mut Vec<Record>) {
        self.advance(meta.ts_us, out);
        self.stats.messages += 1;
        let has_to_tag = msg.to.tag.is_some();
        match msg.start {
            StartLine::Request {
                method: Method::Invite,
                ..
            } if !has_to_tag => self.initial_invite(meta, msg, out),
            // A To-tagged INVITE with credentials for no known dialog: a retry after a
            // challenge the capture or log missed, whose UA copied the challenge's To-tag
            // (Ekiga 4, corpus log #4). Without credentials it stays a re-INVITE of a call
            // begun before the capture: no record, its setup time would be wrong.
            StartLine::Request {
                method: Method::Invite,
                ..
            } if msg.has_credentials && self.find(msg).is_none() => {
                self.initial_invite(meta, msg, out)
            }
            StartLine::Request {
                method: Method::Message,
                ..
            } => self.text_request(meta, msg, out),
            StartLine::Response { code, .. } if msg.cseq.method == Method::Message => {
                self.text_response(meta, msg, code)
            }
            _ => self.in_dialog(meta, msg),
        }
    }

    /// Moves time forward to `now_us` (message time, or the wall clock when the wire is
    /// quiet) and closes what has timed out.
    pub fn advance(&mut self, now_us: i64, out: &mut Vec<Record>) {
        out.append(&mut self.deferred);
        if now_us > self.now {
            self.now = now_us;
        }
        if self.now >= self.next_sweep {
            // Once per second of message time is precise enough for timers counted in
            // seconds, and keeps the sweep off the per-message path.
            self.next_sweep = self.now.saturating_add(SECOND);
            self.sweep(out);
        }
    }

    /// Closes everything still open: the capture or log ended.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        out.append(&mut self.deferred);
        let keys: Vec<Box<[u8]>> = self.dialogs.keys().cloned().collect();
        for key in keys {
            if let Some(d) = self.dialogs.get_mut(&key) {
                if matches!(d.state, State::Proceeding | State::Confirmed) {
                    d.timeout = Some(TimeoutReason::CaptureEnd);
                }
            }
            self.emit_dialog(&key, out);
        }
        let keys: Vec<Box<[u8]>> = self.texts.keys().cloned().collect();
        for key in keys {
            self.emit_text(&key, out);
        }
    }

    /// For a daemon that stops: writes the finished calls to `out` and takes the open
    /// ones out as (key, state) pairs for the store, so the next start can resume them
    /// with [`Tracker::resume`] and a call spanning the restart stays one record.
    /// MESSAGE transactions awaiting their answer are saved the same way; answered ones
    /// are written (the next start may be far off, and nothing more is to come for them
    /// but copies).
    pub fn suspend(&mut self, out: &mut Vec<Record>) -> Vec<(Vec<u8>, String)> {
        out.append(&mut self.deferred);
        let keys: Vec<Box<[u8]>> = self.dialogs.keys().cloned().collect();
        let mut open = Vec::new();
        for key in keys {
            let ended = self
                .dialogs
                .get(&key)
                .is_some_and(|d| d.state == State::Ended);
            if ended {
                self.emit_dialog(&key, out);
                continue;
            }
            let Some(d) = self.dialogs.remove(&key) else {
                continue;
            };
            self.order.remove(&d.order);
            match serde_json::to_string(&d) {
                Ok(state) => open.push((key.to_vec(), state)),
                // Cannot happen for this plain struct; never lose the call if it does.
                Err(_) => {
                    self.dialogs.insert(key.clone(), d);
                    self.emit_dialog(&key, out);
                }
            }
        }
        let keys: Vec<Box<[u8]>> = self.texts.keys().cloned().collect();
        for key in keys {
            let awaiting = self.texts.get(&key).filter(|t| t.final_any.is_none());
            match awaiting.map(|t| t.state()) {
                Some(Ok(state)) => {
                    if let Some(t) = self.texts.remove(&key) {
                        self.order.remove(&t.order);
                    }
                    open.push((key.to_vec(), state));
                }
                // Answered; or (cannot happen for this plain struct) not encodable: never
                // lose the message.
                _ => self.emit_text(&key, out),
            }
        }
        open
    }

    /// The open dialogs as (key, state) pairs, left in place: what a followed log saves
    /// with each checkpoint, so a restart after a kill -9 resumes them with
    /// [`Tracker::resume`]. Unlike [`Tracker::suspend`], finished dialogs still settling
    /// are included (their record is not written yet), MESSAGE transactions awaiting
    /// their answer too, and nothing is emitted.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, String)> {
        let dialogs = self
            .dialogs
            .iter()
            .filter_map(|(key, d)| serde_json::to_string(d).ok().map(|s| (key.to_vec(), s)));
        let texts = self
            .texts
            .iter()
            .filter_map(|(key, t)| t.state().ok().map(|s| (key.to_vec(), s)));
        dialogs.chain(texts).collect()
    }

    /// What changed since the last call (or the resume): the open entries changed, in
    /// [`Tracker::snapshot`]'s form, and the keys of those gone. Applied to the saved
    /// rows in order, it gives what `snapshot` would. Needs [`Tracker::track_changes`].
    pub fn changes(&mut self) -> OpenChanges {
        let mut c = OpenChanges::default();
        for (key, d) in self.dialogs.iter_mut().filter(|(_, d)| d.dirty) {
            d.dirty = false;
            if let Ok(s) = serde_json::to_string(d) {
                c.upsert.push((key.to_vec(), s));
            }
        }
        for (key, t) in self.texts.iter_mut().filter(|(_, t)| t.dirty) {
            t.dirty = false;
            if let Ok(s) = t.state() {
                c.upsert.push((key.to_vec(), s));
            }
        }
        if let Some(gone) = self.gone.as_mut() {
            c.remove = gone.drain(..).map(Vec::from).collect();
        }
        c
    }

    /// Forgets the changes not yet taken: the caller saves a whole snapshot instead.
    pub fn clear_changes(&mut self) {
        self.dialogs.values_mut().for_each(|d| d.dirty = false);
        self.texts.values_mut().for_each(|t| t.dirty = false);
        if let Some(gone) = self.gone.as_mut() {
            gone.clear();
        }
    }

    /// Takes back dialogs from [`Tracker::suspend`] or [`Tracker::snapshot`]. Returns how many states could not be
    /// decoded (from another callmeta version), which are dropped and should be logged.
    pub fn resume(&mut self, dialogs: impl IntoIterator<Item = (Vec<u8>, String)>) -> usize {
        let mut bad = 0;
        for (key, state) in dialogs {
            let Ok(saved) = serde_json::from_str::<Saved>(&state) else {
                bad += 1;
                continue;
            };
            // The cap holds for resumed calls too: the oldest goes first.
            let mut evicted = Vec::new();
            self.make_room(&mut evicted);
            self.deferred.append(&mut evicted);
            let key: Box<[u8]> = key.into();
            // The sequence comes from the store: saturate rather than overflow.
            let mut order = |o: &mut (i64, u64)| {
                self.seq = self.seq.max(o.1).saturating_add(1);
                o.1 = self.seq;
                *o
            };
            match saved {
                Saved::Dialog(d) => {
                    let mut d = *d;
                    let o = order(&mut d.order);
                    self.order.insert(o, key.clone());
                    self.dialogs.insert(key, d);
                }
                Saved::Text(t) => {
                    let mut t = t.into_text();
                    let o = order(&mut t.order);
                    self.order.insert(o, key.clone());
                    self.texts.insert(key, t);
                }
            }
        }
        bad
    }

    fn initial_invite(&mut self, meta: &Meta<'_>, msg: &SipMessage<'_>, out: &mut Vec<Record>) {
        let Some(tag) = msg.from.tag else {
            // Without a From-tag (RFC 2543 peers) the Call-ID alone keys the dialog.
            return self.initial_invite_keyed(meta, msg, b"", out);
        };
        self.initial_invite_keyed(meta, msg, tag, out)
    }

    fn initial_invite_keyed(
        &mut self,
        meta: &Meta<'_>,
        msg: &SipMessage<'_>,
        tag: &[u8],
        out: &mut Vec<Record>,
    ) {
        if msg.call_id.len() > MAX_ID || tag.len() > MAX_ID {
            self.stats.oversized += 1;
            return;
        }
        let branch = msg.via.and_then(|v| v.branch);
        let key = dialog_key(&mut self.scratch, msg.call_id, tag);
        if let Some(d) = self.dialogs.get_mut(key) {
            d.dirty = true;
            let same_branch = branch.is_some() && d.invite_branch.as_deref() == branch;
            match d.state {
                State::Ended if !same_branch => {
                    // Call-ID reuse: the earlier attempt is over; this starts a new record.
                    let key: Box<[u8]> = key.into();
                    self.emit_dialog(&key, out);
                }
                State::Challenged if msg.cseq.seq > d.invite_cseq => {
                    d.retry(meta.ts_us, msg);
                    return;
                }
                _ => {
                    // A retransmission, or the same INVITE seen on another hop.
                    self.stats.duplicates += 1;
                    if d.state == State::Proceeding && msg.cseq.seq >= d.invite_cseq {
                        if msg.cseq.seq > d.invite_cseq {
                            // A retry whose challenge the capture missed.
                            d.invite_cseq = msg.cseq.seq;
                            d.invite_branch = branch.map(Into::into);
                        }
                        d.last_invite_at = meta.ts_us;
                        d.last_seen_at = meta.ts_us;
                    }
                    return;
                }
            }
        }
        self.make_room(out);
        let StartLine::Request { uri, .. } = msg.start else {
            return;
        };
        let mut offer_codecs = String::new();
        if msg.has_sdp() {
            add_codecs(&mut offer_codecs, msg.body);
        }
        self.seq += 1;
        let order = (meta.ts_us, self.seq);
        let d = Dialog {
            order,
            state: State::Proceeding,
            source: meta.source.clone(),
            invite_cseq: msg.cseq.seq,
            first_invite_cseq: msg.cseq.seq,
            invite_branch: branch.map(Into::into),
            caller_tag: tag.into(),
            caller_hop: (meta.src, meta.dst),
            transport: meta.transport,
            started_at: meta.ts_us,
            ringing_at: None,
            answered_at: None,
            pdd_at: None,
            last_invite_at: meta.ts_us,
            last_provisional_at: None,
            last_seen_at: meta.ts_us,
            final_any: None,
            final_caller_hop: None,
            cancel_at: None,
            bye: None,
            ended_at: None,
            timeout: None,
            reason_cause: None,
            session_expires: None,
            last_refresh_at: meta.ts_us,
            caller: text(msg.from.uri.user.unwrap_or_default()),
            caller_domain: text(msg.from.uri.host),
            caller_name: opt_text(msg.from.display),
            callee: text(uri.user.unwrap_or_default()),
            callee_domain: text(uri.host),
            asserted_identity: msg.asserted_identity.and_then(|u| opt_text(u.user)),
            user_agent: opt_text(msg.user_agent),
            server: None,
            server_from_trying: false,
            offer_codecs,
            answer_codecs: String::new(),
            dirty: true,
        };
        let key: Box<[u8]> = dialog_key(&mut self.scratch, msg.call_id, tag).into();
        self.order.insert(order, key.clone());
        self.dialogs.insert(key, d);
    }

    /// Finds the dialog of an in-dialog message: by (Call-ID, From-tag) for the caller's
    /// requests and their responses, by (Call-ID, To-tag) for the callee's.
    fn find(&mut self, msg: &SipMessage<'_>) -> Option<(&mut Dialog, bool)> {
        let from_tag = msg.from.tag.unwrap_or_default();
        let key = dialog_key(&mut self.scratch, msg.call_id, from_tag);
        if self.dialogs.contains_key(key) {
            let d = self.dialogs.get_mut(key)?;
            // Found for a message, which may change it: saved again at the next changes().
            d.dirty = true;
            return Some((d, true));
        }
        let to_tag = msg.to.tag?;
        let key = dialog_key(&mut self.scratch, msg.call_id, to_tag);
        let d = self.dialogs.get_mut(key)?;
        d.dirty = true;
        Some((d, false))
    }

    fn in_dialog(&mut self, meta: &Meta<'_>, msg: &SipMessage<'_>) {
        let Some((d, from_caller)) = self.find(msg) else {
            self.stats.orphans += 1;
            return;
        };
        let ts = meta.ts_us;
        if d.state != State::Ended {
            d.last_seen_at = d.last_seen_at.max(ts);
        }
        match msg.start {
            StartLine::Response { code, .. } => {
                let initial = msg.cseq.method == Method::Invite
                    && (msg.cseq.seq == d.invite_cseq
                        || ((200..300).contains(&code)
                            && (d.first_invite_cseq..d.invite_cseq).contains(&msg.cseq.seq)
                            && d.answered_at.is_none()));
                if initial {
                    Self::invite_response(d, meta, msg, code);
                } else if (200..300).contains(&code)
                    && matches!(msg.cseq.method, Method::Invite | Method::Update)
                {
                    // A session refresh (RFC 4028 §10): re-INVITE or UPDATE answered.
                    d.last_refresh_at = ts;
                    if msg.session_expires.is_some() {
                        d.session_expires = msg.session_expires;
                    }
                    if msg.has_sdp() {
                        add_codecs(&mut d.answer_codecs, msg.body);
                    }
                } else if msg.cseq.method == Method::Invite && msg.has_sdp() && code < 300 {
                    add_codecs(&mut d.answer_codecs, msg.body);
                }
            }
            StartLine::Request { method, .. } => match method {
                Method::Bye if d.bye.is_none() && d.state != State::Ended => {
                    let side = if from_caller {
                        Side::Caller
                    } else {
                        Side::Callee
                    };
                    d.bye = Some((ts, side));
                    d.reason_cause = d.reason_cause.or(msg.reason_cause);
                    d.ended_at = Some(ts);
                    d.state = State::Ended;
                }
                Method::Cancel
                    if msg.cseq.seq == d.invite_cseq
                        && d.cancel_at.is_none()
                        && d.final_any.is_none() =>
                {
                    d.cancel_at = Some(ts);
                    d.reason_cause = d.reason_cause.or(msg.reason_cause);
                }
                // Some UAs (Ekiga 4 to Asterisk 11, corpus log #4) copy the challenge's
                // To-tag into the retried INVITE (RFC 3261 §22.2 says not to): still the
                // retry, not a re-INVITE, while no 2xx made a dialog.
                Method::Invite if d.state == State::Challenged && msg.cseq.seq > d.invite_cseq => {
                    d.retry(ts, msg)
                }
                // That retry retransmitted: Timer B counts from the latest copy, as for an
                // INVITE without a To-tag (initial_invite_keyed).
                Method::Invite
                    if from_caller
                        && d.state == State::Proceeding
                        && msg.cseq.seq == d.invite_cseq =>
                {
                    d.last_invite_at = d.last_invite_at.max(ts);
                }
                Method::Ack if msg.has_sdp() => add_codecs(&mut d.answer_codecs, msg.body),
                _ => {}
            },
        }
    }

    fn invite_response(d: &mut Dialog, meta: &Meta<'_>, msg: &SipMessage<'_>, code: u16) {
        let ts = meta.ts_us;
        let server = msg.server.or(msg.user_agent);
        if code > 100 && (d.server.is_none() || d.server_from_trying) {
            if let Some(s) = opt_text(server) {
                d.server = Some(s);
                d.server_from_trying = false;
            }
        } else if code == 100 && d.server.is_none() {
            d.server = opt_text(server);
            d.server_from_trying = d.server.is_some();
        }
        if code < 200 {
            if d.state != State::Proceeding {
                return;
            }
            // Any provisional, 100 included, ends Timer B (RFC 3261 §17.1.1.2: the
            // transaction is then Proceeding and waits for the final response).
            d.last_provisional_at = Some(ts);
            if code == 100 {
                return;
            }
            if d.pdd_at.is_none() {
                d.pdd_at = Some(ts);
            }
            if matches!(code, 180 | 183) && d.ringing_at.is_none() {
                d.ringing_at = Some(ts);
            }
            if msg.has_sdp() {
                add_codecs(&mut d.answer_codecs, msg.body);
            }
            return;
        }
        // A final response. The caller's hop is the reverse of the INVITE's first sighting.
        let on_caller_hop = meta.src == d.caller_hop.1 && meta.dst == d.caller_hop.0;
        if on_caller_hop && d.final_caller_hop.is_none() && d.state != State::Challenged {
            d.final_caller_hop = Some(code);
        }
        if d.bye.is_some() {
            return;
        }
        if let Some((_, earlier)) = d.final_any {
            // Forking: a 2xx from one branch wins over another branch's rejection
            // (RFC 3261 §16.7 step 6); otherwise the first final response stands.
            let fork_won = (200..300).contains(&code) && !(200..300).contains(&earlier);
            if !fork_won || d.state != State::Ended {
                return;
            }
            d.final_caller_hop = d.final_caller_hop.filter(|c| (200..300).contains(c));
        }
        d.final_any = Some((ts, code));
        if d.pdd_at.is_none() && !matches!(code, 401 | 402 | 407) {
            d.pdd_at = Some(ts);
        }
        if (200..300).contains(&code) {
            d.answered_at.get_or_insert(ts);
            d.state = State::Confirmed;
            d.ended_at = None;
            d.last_refresh_at = ts;
            d.session_expires = msg.session_expires;
            if msg.has_sdp() {
                add_codecs(&mut d.answer_codecs, msg.body);
            }
        } else if is_retryable(code) {
            d.state = State::Challenged;
            d.ended_at = Some(ts);
        } else {
            d.state = State::Ended;
            d.ended_at = Some(ts);
            d.reason_cause = d.reason_cause.or(msg.reason_cause);
        }
    }

    fn text_request(&mut self, meta: &Meta<'_>, msg: &SipMessage<'_>, out: &mut Vec<Record>) {
        if msg.call_id.len() > MAX_ID {
            self.stats.oversized += 1;
            return;
        }
        let key = text_key(&mut self.scratch, msg.call_id, msg.cseq.seq);
        if self.texts.contains_key(key) {
            self.stats.duplicates += 1;
            return;
        }
        let StartLine::Request { uri, .. } = msg.start else {
            return;
        };
        self.make_room(out);
        self.seq += 1;
        let order = (meta.ts_us, self.seq);
        let record = MessageRecord {
            call_id: text(msg.call_id),
            cseq: msg.cseq.seq,
            sent_at: meta.ts_us,
            answered_at: None,
            final_status: None,
            sender: text(msg.from.uri.user.unwrap_or_default()),
            sender_domain: text(msg.from.uri.host),
            recipient: text(uri.user.unwrap_or_default()),
            recipient_domain: text(uri.host),
            content_type: opt_text(msg.content_type),
            size_bytes: msg.content_length.unwrap_or(msg.body.len()) as u64,
            src_ip: meta.src.ip(),
            src_port: meta.src.port(),
            dst_ip: meta.dst.ip(),
            dst_port: meta.dst.port(),
            transport: meta.transport,
            source: meta.source.to_string(),
        };
        let key: Box<[u8]> = text_key(&mut self.scratch, msg.call_id, msg.cseq.seq).into();
        self.order.insert(order, key.clone());
        self.texts.insert(
            key,
            TextMessage {
                order,
                record,
                caller_hop: (meta.src, meta.dst),
                final_any: None,
                final_caller_hop: None,
                dirty: true,
            },
        );
    }

    fn text_response(&mut self, meta: &Meta<'_>, msg: &SipMessage<'_>, code: u16) {
        if code < 200 {
            return;
        }
        let key = text_key(&mut self.scratch, msg.call_id, msg.cseq.seq);
        let Some(t) = self.texts.get_mut(key) else {
            self.stats.orphans += 1;
            return;
        };
        t.dirty = true;
        if meta.src == t.caller_hop.1 && meta.dst == t.caller_hop.0 && t.final_caller_hop.is_none()
        {
            t.final_caller_hop = Some(code);
        }
        if t.final_any.is_none() {
            t.final_any = Some((meta.ts_us, code));
        }
    }

    /// Keeps the table under its cap by closing the oldest entry.
    fn make_room(&mut self, out: &mut Vec<Record>) {
        while self.open() >= self.cfg.max_open_dialogs.max(1) {
            let Some((_, key)) = self.order.pop_first() else {
                return;
            };
            self.stats.evicted += 1;
            if let Some(d) = self.dialogs.get_mut(&key) {
                if d.state != State::Ended {
                    d.timeout = Some(TimeoutReason::Evicted);
                }
                self.emit_dialog(&key, out);
            } else {
                self.emit_text(&key, out);
            }
        }
    }

    /// Closes what has timed out. Times come from captures and the store, so every sum
    /// saturates: a crafted timestamp near `i64::MAX` must not overflow.
    fn sweep(&mut self, out: &mut Vec<Record>) {
        let now = self.now;
        let cfg = self.cfg;
        let mut expired = std::mem::take(&mut self.expired);
        for (key, d) in self.dialogs.iter_mut() {
            let reason = match d.state {
                State::Ended => (now
                    >= d.ended_at
                        .unwrap_or(d.last_seen_at)
                        .saturating_add(cfg.settle))
                .then_some(None),
                // The retry after a challenge may wait for a person typing a password
                // (sngrep's aaa.pcap: 32.5 s), so it gets the ring timeout, not Timer B.
                State::Challenged => (now
                    >= d.ended_at
                        .unwrap_or(d.last_seen_at)
                        .saturating_add(cfg.ring_timeout))
                .then_some(None),
                State::Proceeding => match d.last_provisional_at {
                    None => (now >= d.last_invite_at.saturating_add(cfg.transaction_timeout))
                        .then_some(Some(TimeoutReason::NoResponse)),
                    Some(p) => (now >= p.saturating_add(cfg.ring_timeout))
                        .then_some(Some(TimeoutReason::RingTimeout)),
                },
                State::Confirmed => match d.session_expires {
                    Some(se) if now >= d.last_refresh_at.saturating_add(i64::from(se) * SECOND) => {
                        Some(Some(TimeoutReason::SessionExpired))
                    }
                    _ => (now >= d.started_at.saturating_add(cfg.max_call_duration))
                        .then_some(Some(TimeoutReason::MaxDuration)),
                },
            };
            if let Some(reason) = reason {
                d.timeout = d.timeout.or(reason);
                expired.push(key.clone());
            }
        }
        for key in expired.drain(..) {
            self.emit_dialog(&key, out);
        }
        for (key, t) in self.texts.iter() {
            let done_at = match t.final_any {
                Some((at, _)) => at
                    .saturating_add(cfg.settle)
                    .max(t.record.sent_at.saturating_add(cfg.transaction_timeout)),
                None => t.record.sent_at.saturating_add(cfg.transaction_timeout),
            };
            if now >= done_at {
                expired.push(key.clone());
            }
        }
        for key in expired.drain(..) {
            self.emit_text(&key, out);
        }
        self.expired = expired;
    }

    fn emit_dialog(&mut self, key: &[u8], out: &mut Vec<Record>) {
        let Some((key, d)) = self.dialogs.remove_entry(key) else {
            return;
        };
        self.order.remove(&d.order);
        self.stats.calls += 1;
        out.push(Record::Call(Box::new(Self::call_record(&key, d))));
        if let Some(gone) = self.gone.as_mut() {
            gone.push(key);
        }
    }

    fn emit_text(&mut self, key: &[u8], out: &mut Vec<Record>) {
        let Some((key, t)) = self.texts.remove_entry(key) else {
            return;
        };
        self.order.remove(&t.order);
        if let Some(gone) = self.gone.as_mut() {
            gone.push(key);
        }
        self.stats.text_messages += 1;
        let mut r = t.record;
        r.answered_at = t.final_any.map(|(at, _)| at);
        r.final_status = t.final_caller_hop.or(t.final_any.map(|(_, c)| c));
        out.push(Record::Message(Box::new(r)));
    }

    fn call_record(key: &[u8], d: Dialog) -> CallRecord {
        // The key is Call-ID, NUL, From-tag; a key read back from the store that does
        // not match its tag must not panic: then the whole key stands as the Call-ID.
        let call_id_len = key.len().checked_sub(d.caller_tag.len() + 1);
        let call_id = text(call_id_len.and_then(|n| key.get(..n)).unwrap_or(key));
        let final_status = d.final_caller_hop.or(d.final_any.map(|(_, c)| c));
        let timed_out = d.bye.is_none() && (d.timeout.is_some() || final_status.is_none());
        let (ended_at, ended_by, timeout_reason, hangup_side) = if let Some((at, side)) = d.bye {
            (at, EndedBy::Bye, None, Some(side))
        } else if timed_out || final_status.is_some_and(|c| (200..300).contains(&c)) {
            let reason = d.timeout.unwrap_or(TimeoutReason::CaptureEnd);
            (d.last_seen_at, EndedBy::Timeout, Some(reason), None)
        } else if d.cancel_at.is_some() {
            (
                d.ended_at.unwrap_or(d.last_seen_at),
                EndedBy::Cancel,
                None,
                Some(Side::Caller),
            )
        } else {
            (
                d.ended_at.unwrap_or(d.last_seen_at),
                EndedBy::Rejected,
                None,
                Some(Side::Callee),
            )
        };
        let codecs = if !d.answer_codecs.is_empty() {
            Some(d.answer_codecs)
        } else if !d.offer_codecs.is_empty() {
            Some(d.offer_codecs)
        } else {
            None
        };
        CallRecord {
            call_id,
            from_tag: text(&d.caller_tag),
            started_at: d.started_at,
            ringing_at: d.ringing_at,
            answered_at: d.answered_at,
            ended_at,
            last_seen_at: d.last_seen_at,
            pdd_ms: d.pdd_at.map(|p| (p - d.started_at).div_euclid(1000)),
            disposition: if d.answered_at.is_some() {
                Disposition::Answered
            } else {
                disposition(final_status)
            },
            final_status,
            ended_by,
            timeout_reason,
            hangup_side,
            reason_cause: d.reason_cause,
            caller: d.caller,
            caller_domain: d.caller_domain,
            caller_name: d.caller_name,
            callee: d.callee,
            callee_domain: d.callee_domain,
            asserted_identity: d.asserted_identity,
            src_ip: d.caller_hop.0.ip(),
            src_port: d.caller_hop.0.port(),
            dst_ip: d.caller_hop.1.ip(),
            dst_port: d.caller_hop.1.port(),
            transport: d.transport,
            user_agent: d.user_agent,
            server: d.server,
            codecs,
            source: d.source.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! One test per rule of docs/call-model.md. Messages are built directly (not parsed)
    //! so each test states exactly what was on the wire.
    use super::*;
    use crate::sip::{CSeq, NameAddr, Uri, Via};

    const S: i64 = SECOND;
    const MS: i64 = 1000;
    const CALLER: &str = "10.0.0.1:5060";
    const PROXY: &str = "10.0.0.2:5060";
    const CALLEE: &str = "10.0.0.3:5060";

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn uri(user: &'static str, host: &'static str) -> Uri<'static> {
        Uri {
            scheme: b"sip",
            user: Some(user.as_bytes()),
            host: host.as_bytes(),
            port: None,
        }
    }

    /// A message builder with the values of one plain call; tests change what matters.
    #[derive(Clone, Copy)]
    struct M {
        msg: SipMessage<'static>,
    }

    fn invite() -> M {
        M {
            msg: SipMessage {
                start: StartLine::Request {
                    method: Method::Invite,
                    uri: uri("15559870002", "pbx.example"),
                },
                call_id: b"call-1@host",
                cseq: CSeq {
                    seq: 1,
                    method: Method::Invite,
                },
                from: NameAddr {
                    display: Some(b"Alice"),
                    uri: uri("+15551230001", "example.com"),
                    tag: Some(b"ftag"),
                },
                to: NameAddr {
                    display: None,
                    uri: uri("15559870002", "pbx.example"),
                    tag: None,
                },
                via: Some(Via {
                    transport: b"UDP",
                    sent_by: b"10.0.0.1",
                    branch: Some(b"z9hG4bK-1"),
                }),
                contact: None,
                user_agent: Some(b"softphone/1.0"),
                server: None,
                asserted_identity: Some(uri("5551230001", "example.com")),
                reason_cause: None,
                session_expires: None,
                has_credentials: false,
                content_type: Some(b"application/sdp"),
                content_length: Some(SDP_OFFER.len()),
                body: SDP_OFFER,
                body_truncated: false,
                len: 0,
            },
        }
    }

    const SDP_OFFER: &[u8] =
        b"v=0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    const SDP_ANSWER: &[u8] =
        b"v=0\r\nm=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    impl M {
        fn resp(self, code: u16) -> M {
            let mut m = self;
            m.msg.start = StartLine::Response { code, reason: b"" };
            m.msg.body = b"";
            m.msg.content_type = None;
            m.msg.user_agent = None;
            m.msg.server = Some(b"pbx/2.0");
            if code > 100 {
                m.msg.to.tag = Some(b"ttag");
            }
            m
        }
        fn req(self, method: Method<'static>) -> M {
            let mut m = self;
            m.msg.start = StartLine::Request {
                method,
                uri: uri("15559870002", "10.0.0.3"),
            };
            m.msg.cseq = CSeq {
                seq: if method == Method::Ack { 1 } else { 2 },
                method,
            };
            m.msg.to.tag = Some(b"ttag");
            m.msg.body = b"";
            m.msg.content_type = None;
            m
        }
        /// The same request sent by the callee: tags swapped.
        fn sent_by_callee(self) -> M {
            let mut m = self;
            std::mem::swap(&mut m.msg.from.tag, &mut m.msg.to.tag);
            m
        }
        fn cseq(mut self, seq: u32) -> M {
            self.msg.cseq.seq = seq;
            self
        }
        fn branch(mut self, b: &'static str) -> M {
            if let Some(v) = self.msg.via.as_mut() {
                v.branch = Some(b.as_bytes());
            }
            self
        }
        fn call_id(mut self, id: &'static str) -> M {
            self.msg.call_id = id.as_bytes();
            self
        }
        fn to_tag(mut self, t: &'static str) -> M {
            self.msg.to.tag = Some(t.as_bytes());
            self
        }
        fn reason(mut self, cause: u16) -> M {
            self.msg.reason_cause = Some(cause);
            self
        }
        fn sdp(mut self, body: &'static [u8]) -> M {
            self.msg.body = body;
            self.msg.content_type = Some(b"application/sdp");
            self
        }
        fn session_expires(mut self, s: u32) -> M {
            self.msg.session_expires = Some(s);
            self
        }
        /// With an Authorization (or Proxy-Authorization) header.
        fn credentials(mut self) -> M {
            self.msg.has_credentials = true;
            self
        }
    }

    struct Run {
        t: Tracker,
        out: Vec<Record>,
        source: Arc<str>,
    }

    impl Run {
        fn new() -> Run {
            Run::with(TrackerConfig::default())
        }
        fn with(cfg: TrackerConfig) -> Run {
            Run {
                t: Tracker::new(cfg),
                out: Vec::new(),
                source: Arc::from("test.pcap"),
            }
        }
        /// Feeds `m` seen at `ts` travelling from `src` to `dst`.
        fn at(&mut self, ts: i64, src: &str, dst: &str, m: M) -> &mut Run {
            let meta = Meta {
                ts_us: ts,
                src: addr(src),
                dst: addr(dst),
                transport: Transport::Udp,
                source: &self.source,
            };
            self.t.on_message(&meta, &m.msg, &mut self.out);
            self
        }
        fn calls(&mut self) -> Vec<CallRecord> {
            self.t.finish(&mut self.out);
            self.out
                .drain(..)
                .filter_map(|r| match r {
                    Record::Call(c) => Some(*c),
                    Record::Message(_) => None,
                })
                .collect()
        }
        fn one(&mut self) -> CallRecord {
            let mut calls = self.calls();
            assert_eq!(calls.len(), 1, "expected exactly one record: {calls:#?}");
            calls.remove(0)
        }
    }

    /// INVITE at 0, 100 at 10 ms, 180 at 1 s, 200 at 5 s, ACK, BYE from the caller at 65 s.
    fn answered(r: &mut Run) -> &mut Run {
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(10 * MS, CALLEE, CALLER, i.resp(100))
            .at(S, CALLEE, CALLER, i.resp(180))
            .at(5 * S, CALLEE, CALLER, i.resp(200).sdp(SDP_ANSWER))
            .at(5 * S + MS, CALLER, CALLEE, i.req(Method::Ack))
            .at(65 * S + 1500, CALLER, CALLEE, i.req(Method::Bye).reason(16))
            .at(
                65 * S + 2 * MS,
                CALLEE,
                CALLER,
                i.req(Method::Bye).resp(200),
            )
    }

    #[test]
    fn answered_call_gives_every_field_of_the_record() {
        let c = answered(&mut Run::new()).one();
        assert_eq!(c.call_id, "call-1@host");
        assert_eq!(c.from_tag, "ftag");
        assert_eq!(
            (c.started_at, c.ringing_at, c.answered_at, c.ended_at),
            (0, Some(S), Some(5 * S), 65 * S + 1500)
        );
        assert_eq!(
            (c.duration_ms(), c.billable_ms(), c.pdd_ms),
            (65_001, 60_001, Some(1000))
        );
        assert_eq!(c.disposition, Disposition::Answered);
        assert_eq!(c.final_status, Some(200));
        assert_eq!(c.ended_by, EndedBy::Bye);
        assert_eq!(c.timeout_reason, None);
        assert_eq!(c.hangup_side, Some(Side::Caller));
        assert_eq!(c.reason_cause, Some(16));
        assert_eq!(
            (c.caller.as_str(), c.caller_domain.as_str()),
            ("+15551230001", "example.com")
        );
        assert_eq!(c.caller_name.as_deref(), Some("Alice"));
        assert_eq!(
            (c.callee.as_str(), c.callee_domain.as_str()),
            ("15559870002", "pbx.example")
        );
        assert_eq!(c.asserted_identity.as_deref(), Some("5551230001"));
        assert_eq!(
            (c.src_ip, c.src_port, c.dst_ip, c.dst_port),
            (addr(CALLER).ip(), 5060, addr(CALLEE).ip(), 5060)
        );
        assert_eq!(c.transport, Transport::Udp);
        assert_eq!(c.user_agent.as_deref(), Some("softphone/1.0"));
        assert_eq!(c.server.as_deref(), Some("pbx/2.0"));
        assert_eq!(c.source, "test.pcap");
        assert_eq!(c.last_seen_at, 65 * S + 1500);
    }

    #[test]
    fn a_call_suspended_and_resumed_across_a_restart_is_one_record() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(180))
            .at(4 * S, CALLEE, CALLER, i.resp(200));
        let saved = r.t.suspend(&mut r.out);
        assert_eq!((saved.len(), r.out.len(), r.t.open()), (1, 0, 0));
        let mut after = Run::new();
        assert_eq!(after.t.resume(saved), 0);
        after.at(60 * S, CALLER, CALLEE, i.req(Method::Bye));
        let c = after.one();
        assert_eq!(
            (c.started_at, c.ringing_at, c.answered_at, c.ended_at),
            (0, Some(S), Some(4 * S), 60 * S)
        );
        assert_eq!((c.billable_ms(), c.ended_by), (56_000, EndedBy::Bye));
    }

    #[test]
    fn a_snapshot_leaves_the_tracker_as_it_was_and_resumes_a_settling_call_too() {
        let mut r = Run::new();
        let (open, done) = (invite(), invite().call_id("call-2@host"));
        r.at(0, CALLER, CALLEE, open)
            .at(S, CALLEE, CALLER, open.resp(200))
            .at(S, CALLER, CALLEE, done)
            .at(2 * S, CALLEE, CALLER, done.resp(486));
        let saved = r.t.snapshot();
        assert_eq!((saved.len(), r.out.len(), r.t.open()), (2, 0, 2));
        // The original goes on as if nothing happened ...
        let before: Vec<CallRecord> = r.calls();
        // ... and a tracker resumed from the snapshot gives the same records.
        let mut after = Run::new();
        assert_eq!(after.t.resume(saved), 0);
        let mut resumed = after.calls();
        resumed.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        let mut before = before;
        before.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        assert_eq!(resumed, before);
        assert_eq!(resumed[1].final_status, Some(486));
    }

    #[test]
    fn suspend_writes_finished_calls_instead_of_carrying_them() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(486));
        assert!(r.t.suspend(&mut r.out).is_empty());
        assert_eq!(r.out.len(), 1);
    }

    #[test]
    fn undecodable_saved_state_is_counted_not_a_panic() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert_eq!(t.resume([(b"k".to_vec(), "{not json".to_string())]), 1);
        assert_eq!(t.open(), 0);
    }

    #[test]
    fn an_oversized_call_id_is_counted_not_followed() {
        let long: &'static str = Box::leak("x".repeat(300).into_boxed_str());
        let mut r = Run::new();
        r.at(0, CALLER, CALLEE, invite().call_id(long));
        assert_eq!((r.t.stats().oversized, r.t.open()), (1, 0));
    }

    #[test]
    fn one_record_per_call_id_and_from_tag() {
        let mut r = Run::new();
        let a = invite();
        let b = invite().call_id("call-2@host");
        r.at(0, CALLER, CALLEE, a).at(1, CALLER, CALLEE, b);
        r.at(2, CALLEE, CALLER, a.resp(486))
            .at(3, CALLEE, CALLER, b.resp(404));
        let calls = r.calls();
        assert_eq!(calls.len(), 2);
        let codes: Vec<_> = calls
            .iter()
            .map(|c| (c.call_id.as_str(), c.final_status))
            .collect();
        assert!(
            codes.contains(&("call-1@host", Some(486)))
                && codes.contains(&("call-2@host", Some(404)))
        );
    }

    #[test]
    fn retransmissions_never_change_the_record_first_sighting_wins() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(500 * MS, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(180))
            .at(2 * S, CALLEE, CALLER, i.resp(180))
            .at(3 * S, CALLEE, CALLER, i.resp(486))
            .at(3 * S + 500 * MS, CALLEE, CALLER, i.resp(486));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.ringing_at, c.ended_at),
            (0, Some(S), 3 * S)
        );
        assert_eq!(r.t.stats().duplicates, 1);
    }

    #[test]
    fn one_dialog_seen_at_two_hops_is_one_record_with_earliest_sightings() {
        let mut r = Run::new();
        let i = invite();
        let hop2 = i.branch("z9hG4bK-proxy");
        r.at(0, CALLER, PROXY, i)
            .at(2 * MS, PROXY, CALLEE, hop2)
            .at(S, CALLEE, PROXY, hop2.resp(180))
            .at(S + MS, PROXY, CALLER, i.resp(180))
            .at(4 * S, CALLEE, PROXY, hop2.resp(200))
            .at(4 * S + MS, PROXY, CALLER, i.resp(200))
            .at(9 * S, CALLER, PROXY, i.req(Method::Bye))
            .at(9 * S + MS, PROXY, CALLEE, hop2.req(Method::Bye));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.ringing_at, c.answered_at, c.ended_at),
            (0, Some(S), Some(4 * S), 9 * S)
        );
        assert_eq!((c.src_ip, c.dst_ip), (addr(CALLER).ip(), addr(PROXY).ip()));
    }

    #[test]
    fn b2bua_legs_with_their_own_call_ids_are_separate_records() {
        let mut r = Run::new();
        let a = invite();
        let b = invite().call_id("b-leg@pbx").branch("z9hG4bK-b");
        r.at(0, CALLER, PROXY, a).at(MS, PROXY, CALLEE, b);
        r.at(S, CALLEE, PROXY, b.resp(200))
            .at(S + MS, PROXY, CALLER, a.resp(200));
        assert_eq!(r.calls().len(), 2);
    }

    #[test]
    fn auth_challenge_then_retry_is_one_call_started_at_the_challenged_invite() {
        let mut r = Run::new();
        let first = invite();
        let retry = invite().cseq(2).branch("z9hG4bK-2");
        r.at(0, CALLER, CALLEE, first)
            .at(5 * MS, CALLEE, CALLER, first.resp(407))
            .at(6 * MS, CALLER, CALLEE, first.req(Method::Ack))
            .at(20 * MS, CALLER, CALLEE, retry)
            .at(2 * S, CALLEE, CALLER, retry.resp(180))
            .at(4 * S, CALLEE, CALLER, retry.resp(200))
            .at(
                10 * S,
                CALLEE,
                CALLER,
                retry.req(Method::Bye).cseq(1).sent_by_callee(),
            );
        let c = r.one();
        assert_eq!(c.started_at, 0);
        assert_eq!(
            c.pdd_ms,
            Some(2000),
            "the 407 does not count as post-dial delay"
        );
        assert_eq!(
            (c.disposition, c.final_status, c.answered_at),
            (Disposition::Answered, Some(200), Some(4 * S))
        );
    }

    #[test]
    fn a_retry_carrying_the_challenges_to_tag_is_still_the_same_call() {
        let mut r = Run::new();
        let first = invite();
        let retry = invite().cseq(2).branch("z9hG4bK-2").to_tag("ttag");
        r.at(0, CALLER, CALLEE, first)
            .at(5 * MS, CALLEE, CALLER, first.resp(401));
        r.at(20 * MS, CALLER, CALLEE, retry)
            .at(S, CALLEE, CALLER, retry.resp(200));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.final_status, c.answered_at),
            (0, Some(200), Some(S))
        );
    }

    /// The retry of corpus log #4 alone: CSeq 3, credentials, the missed challenge's
    /// To-tag; then 100, 200, ACK and the caller's BYE, all with that To-tag.
    fn retry_without_its_challenge(r: &mut Run, retry: M) -> &mut Run {
        r.at(0, CALLER, CALLEE, retry)
            .at(10 * MS, CALLEE, CALLER, retry.resp(100))
            .at(S, CALLEE, CALLER, retry.resp(200).sdp(SDP_ANSWER))
            .at(S + MS, CALLER, CALLEE, retry.req(Method::Ack).cseq(3))
            .at(20 * S, CALLER, CALLEE, retry.req(Method::Bye).cseq(4))
            .at(
                20 * S + MS,
                CALLEE,
                CALLER,
                retry.req(Method::Bye).cseq(4).resp(200),
            )
    }

    #[test]
    fn a_to_tagged_invite_with_credentials_for_an_unknown_dialog_starts_a_call() {
        let mut r = Run::new();
        let retry = invite().cseq(3).to_tag("ttag").credentials();
        let c = retry_without_its_challenge(&mut r, retry).one();
        assert_eq!(
            (c.call_id.as_str(), c.from_tag.as_str()),
            ("call-1@host", "ftag")
        );
        assert_eq!(
            (c.started_at, c.ringing_at, c.answered_at, c.ended_at),
            (0, None, Some(S), 20 * S)
        );
        assert_eq!(
            (c.disposition, c.final_status, c.ended_by, c.hangup_side),
            (
                Disposition::Answered,
                Some(200),
                EndedBy::Bye,
                Some(Side::Caller)
            )
        );
        assert_eq!(
            (c.caller.as_str(), c.callee.as_str()),
            ("+15551230001", "15559870002")
        );
        assert_eq!((c.src_ip, c.dst_ip), (addr(CALLER).ip(), addr(CALLEE).ip()));
        assert_eq!(r.t.stats().orphans, 0);
    }

    #[test]
    fn a_retransmitted_retry_carrying_a_to_tag_restarts_timer_b() {
        let mut r = Run::new();
        let retry = invite().cseq(2).to_tag("challenge-tag").credentials();
        r.at(0, CALLER, CALLEE, retry)
            .at(20 * S, CALLER, CALLEE, retry);
        r.t.advance(40 * S, &mut r.out);
        assert!(
            r.out.is_empty(),
            "timed out from the first copy: {:?}",
            r.out
        );
        r.t.advance(53 * S, &mut r.out);
        let c = r.one();
        assert_eq!(c.timeout_reason, Some(TimeoutReason::NoResponse));
    }

    #[test]
    fn a_to_tagged_invite_without_credentials_for_an_unknown_dialog_makes_no_record() {
        let mut r = Run::new();
        let reinvite = invite().cseq(3).to_tag("ttag");
        let calls = retry_without_its_challenge(&mut r, reinvite).calls();
        assert!(calls.is_empty(), "{calls:#?}");
        assert_eq!(r.t.stats().orphans, 6);
    }

    #[test]
    fn a_reinvite_with_credentials_in_a_known_call_is_not_a_second_call() {
        let mut r = Run::new();
        let i = invite();
        let from_caller = i.req(Method::Invite).cseq(3).credentials();
        let from_callee = i.req(Method::Invite).cseq(7).sent_by_callee().credentials();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200))
            .at(10 * S, CALLER, CALLEE, from_caller)
            .at(10 * S + MS, CALLEE, CALLER, from_caller.resp(200))
            .at(20 * S, CALLEE, CALLER, from_callee)
            .at(20 * S + MS, CALLER, CALLEE, from_callee.resp(200))
            .at(30 * S, CALLER, CALLEE, i.req(Method::Bye).cseq(4));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.answered_at, c.ended_at, c.last_seen_at),
            (0, Some(S), 30 * S, 30 * S)
        );
    }

    #[test]
    fn a_retry_long_after_the_challenge_is_still_the_same_call() {
        let mut r = Run::new();
        let first = invite();
        let retry = invite().cseq(2).branch("z9hG4bK-2");
        r.at(0, CALLER, CALLEE, first)
            .at(5 * MS, CALLEE, CALLER, first.resp(407));
        r.at(40 * S, CALLER, CALLEE, retry)
            .at(41 * S, CALLEE, CALLER, retry.resp(403));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.final_status, c.ended_at),
            (0, Some(403), 41 * S)
        );
    }

    #[test]
    fn a_100_trying_ends_timer_b_so_a_late_final_response_still_counts() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(10 * MS, CALLEE, CALLER, i.resp(100));
        r.at(34 * S, CALLEE, CALLER, i.resp(408));
        let c = r.one();
        assert_eq!(
            (c.final_status, c.ended_at, c.disposition),
            (Some(408), 34 * S, Disposition::NoAnswer)
        );
    }

    #[test]
    fn a_2xx_to_an_earlier_initial_invite_of_the_attempt_answers_the_call() {
        let mut r = Run::new();
        let one = invite();
        let two = invite().cseq(2).branch("z9hG4bK-2");
        r.at(0, CALLER, CALLEE, one).at(MS, CALLER, CALLEE, two);
        r.at(90 * MS, CALLEE, CALLER, one.resp(200))
            .at(150 * MS, CALLEE, CALLER, two.resp(200));
        assert_eq!(r.one().answered_at, Some(90 * MS));
    }

    #[test]
    fn challenge_without_retry_is_a_rejected_call_with_the_challenge_code() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(5 * MS, CALLEE, CALLER, i.resp(401));
        r.t.advance(200 * S, &mut r.out);
        let c = r.one();
        assert_eq!(
            (c.final_status, c.ended_by, c.ended_at, c.pdd_ms),
            (Some(401), EndedBy::Rejected, 5 * MS, None)
        );
        assert_eq!(c.disposition, Disposition::Failed);
    }

    #[test]
    fn reinvite_updates_last_seen_and_codecs_only() {
        let mut r = Run::new();
        let i = invite();
        let re = i
            .req(Method::Invite)
            .cseq(3)
            .sdp(b"v=0\r\nm=audio 1 RTP/AVP 8\r\n");
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200).sdp(SDP_ANSWER))
            .at(20 * S, CALLER, CALLEE, re)
            .at(
                20 * S + MS,
                CALLEE,
                CALLER,
                re.resp(200).sdp(b"v=0\r\nm=audio 2 RTP/AVP 8\r\n"),
            )
            .at(30 * S, CALLER, CALLEE, i.req(Method::Bye).cseq(4));
        let c = r.one();
        assert_eq!(
            (c.started_at, c.answered_at, c.ended_at),
            (0, Some(S), 30 * S)
        );
        assert_eq!(c.final_status, Some(200));
        assert_eq!(c.codecs.as_deref(), Some("PCMU,telephone-event,PCMA"));
    }

    #[test]
    fn forked_provisionals_are_one_record_and_the_first_2xx_decides() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, PROXY, i)
            .at(S, PROXY, CALLER, i.resp(180).to_tag("fork-a"))
            .at(S + MS, PROXY, CALLER, i.resp(183).to_tag("fork-b"))
            .at(3 * S, PROXY, CALLER, i.resp(200).to_tag("fork-b"))
            .at(
                9 * S,
                PROXY,
                CALLER,
                i.req(Method::Bye).to_tag("fork-b").sent_by_callee(),
            );
        let c = r.one();
        assert_eq!(
            (c.ringing_at, c.answered_at, c.hangup_side),
            (Some(S), Some(3 * S), Some(Side::Callee))
        );
    }

    #[test]
    fn call_id_reused_after_the_end_with_a_new_branch_starts_a_new_record() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(486));
        r.at(2 * S, CALLER, CALLEE, i.branch("z9hG4bK-new").cseq(7));
        r.at(3 * S, CALLEE, CALLER, i.cseq(7).resp(404));
        let calls = r.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].started_at, calls[0].final_status), (0, Some(486)));
        assert_eq!(
            (calls[1].started_at, calls[1].final_status),
            (2 * S, Some(404))
        );
    }

    #[test]
    fn ringing_at_is_the_first_180_or_183_and_pdd_the_first_non_100_provisional() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(100 * MS, CALLEE, CALLER, i.resp(100))
            .at(700 * MS + 999, CALLEE, CALLER, i.resp(181))
            .at(2 * S, CALLEE, CALLER, i.resp(183))
            .at(3 * S, CALLEE, CALLER, i.resp(180))
            .at(4 * S, CALLEE, CALLER, i.resp(480));
        let c = r.one();
        assert_eq!((c.ringing_at, c.pdd_ms), (Some(2 * S), Some(700)));
    }

    #[test]
    fn pdd_falls_back_to_the_final_response_when_no_provisional_came() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(10 * MS, CALLEE, CALLER, i.resp(100))
            .at(1234 * MS + 999, CALLEE, CALLER, i.resp(503));
        let c = r.one();
        assert_eq!(
            (c.pdd_ms, c.ringing_at, c.ended_at),
            (Some(1234), None, 1234 * MS + 999)
        );
    }

    #[test]
    fn callee_bye_is_a_callee_hangup_and_ends_the_call() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200))
            .at(
                7 * S,
                CALLEE,
                CALLER,
                i.req(Method::Bye).cseq(1).sent_by_callee().reason(17),
            );
        let c = r.one();
        assert_eq!(
            (c.ended_by, c.hangup_side, c.ended_at, c.reason_cause),
            (EndedBy::Bye, Some(Side::Callee), 7 * S, Some(17))
        );
        assert_eq!(c.billable_ms(), 6000);
    }

    #[test]
    fn cancelled_call_ends_at_the_487_as_a_caller_cancel_with_no_answer() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(180))
            .at(
                5 * S,
                CALLER,
                CALLEE,
                i.req(Method::Cancel).cseq(1).to_tag("").reason(16),
            )
            .at(5 * S + MS, CALLEE, CALLER, i.resp(487))
            .at(5 * S + 2 * MS, CALLER, CALLEE, i.req(Method::Ack));
        let c = r.one();
        assert_eq!(
            (c.ended_at, c.ended_by, c.hangup_side),
            (5 * S + MS, EndedBy::Cancel, Some(Side::Caller))
        );
        assert_eq!(
            (c.disposition, c.final_status, c.reason_cause),
            (Disposition::NoAnswer, Some(487), Some(16))
        );
        assert_eq!(c.billable_ms(), 0);
    }

    #[test]
    fn final_codes_map_to_dispositions() {
        for (code, disp) in [
            (486, Disposition::Busy),
            (600, Disposition::Busy),
            (487, Disposition::NoAnswer),
            (408, Disposition::NoAnswer),
            (480, Disposition::NoAnswer),
            (404, Disposition::Failed),
            (302, Disposition::Failed),
            (503, Disposition::Failed),
            (603, Disposition::Failed),
        ] {
            let mut r = Run::new();
            let i = invite();
            r.at(0, CALLER, CALLEE, i)
                .at(S, CALLEE, CALLER, i.resp(code));
            let c = r.one();
            assert_eq!(
                (c.disposition, c.ended_by, c.hangup_side),
                (disp, EndedBy::Rejected, Some(Side::Callee)),
                "code {code}"
            );
        }
    }

    #[test]
    fn the_caller_hops_final_code_wins_but_ended_at_is_the_first_final_anywhere() {
        let mut r = Run::new();
        let i = invite();
        let hop2 = i.branch("z9hG4bK-proxy");
        r.at(0, CALLER, PROXY, i)
            .at(MS, PROXY, CALLEE, hop2)
            .at(S, CALLEE, PROXY, hop2.resp(503))
            .at(S + 3 * MS, PROXY, CALLER, i.resp(500));
        let c = r.one();
        assert_eq!((c.final_status, c.ended_at), (Some(500), S));
    }

    #[test]
    fn another_hops_final_code_counts_when_the_callers_hop_had_none() {
        let mut r = Run::new();
        let i = invite();
        let hop2 = i.branch("z9hG4bK-proxy");
        r.at(0, CALLER, PROXY, i)
            .at(MS, PROXY, CALLEE, hop2)
            .at(S, CALLEE, PROXY, hop2.resp(503));
        assert_eq!(r.one().final_status, Some(503));
    }

    #[test]
    fn unanswered_invite_without_response_times_out_after_timer_b() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i).at(4 * S, CALLER, CALLEE, i);
        r.t.advance(4 * S + 31 * S, &mut r.out);
        assert!(r.out.is_empty(), "closed before Timer B ran out");
        r.t.advance(4 * S + 32 * S, &mut r.out);
        let c = r.one();
        assert_eq!(
            (c.ended_by, c.timeout_reason, c.disposition),
            (
                EndedBy::Timeout,
                Some(TimeoutReason::NoResponse),
                Disposition::Failed
            )
        );
        assert_eq!(
            (c.ended_at, c.final_status, c.hangup_side),
            (4 * S, None, None)
        );
    }

    #[test]
    fn ringing_without_final_times_out_after_ring_timeout() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(180));
        r.t.advance(S + 180 * S, &mut r.out);
        assert_eq!(r.one().timeout_reason, Some(TimeoutReason::RingTimeout));
    }

    #[test]
    fn answered_call_without_bye_closes_when_the_session_timer_expires() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200).session_expires(90));
        r.at(S + MS, CALLER, CALLEE, i.req(Method::Ack));
        r.t.advance(S + 91 * S, &mut r.out);
        let c = r.one();
        assert_eq!(
            (c.timeout_reason, c.disposition, c.ended_at),
            (
                Some(TimeoutReason::SessionExpired),
                Disposition::Answered,
                S + MS
            )
        );
    }

    #[test]
    fn session_refresh_pushes_the_session_timer_back() {
        let mut r = Run::new();
        let i = invite();
        let up = i.req(Method::Update).cseq(5);
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200).session_expires(90));
        r.at(50 * S, CALLER, CALLEE, up).at(
            50 * S + MS,
            CALLEE,
            CALLER,
            up.resp(200).session_expires(90),
        );
        r.t.advance(100 * S, &mut r.out);
        assert!(r.out.is_empty(), "refreshed at 50 s, so open until 140 s");
        r.t.advance(141 * S, &mut r.out);
        assert_eq!(r.one().last_seen_at, 50 * S + MS);
    }

    #[test]
    fn answered_call_without_bye_or_session_timer_closes_at_max_duration() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200));
        r.t.advance(4 * 3600 * S, &mut r.out);
        assert_eq!(r.one().timeout_reason, Some(TimeoutReason::MaxDuration));
    }

    #[test]
    fn calls_open_at_the_end_of_a_capture_close_as_capture_end() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(200))
            .at(S + MS, CALLER, CALLEE, i.req(Method::Ack));
        let c = r.one();
        assert_eq!(
            (c.ended_by, c.timeout_reason, c.ended_at),
            (EndedBy::Timeout, Some(TimeoutReason::CaptureEnd), S + MS)
        );
        assert_eq!(
            (c.disposition, c.billable_ms()),
            (Disposition::Answered, 1),
            "until the ACK, the last message seen"
        );
    }

    #[test]
    fn the_open_dialog_cap_closes_the_oldest_as_evicted() {
        let mut r = Run::with(TrackerConfig {
            max_open_dialogs: 2,
            ..TrackerConfig::default()
        });
        r.at(0, CALLER, CALLEE, invite().call_id("a"))
            .at(1, CALLER, CALLEE, invite().call_id("b"))
            .at(2, CALLER, CALLEE, invite().call_id("c"));
        assert_eq!(r.t.stats().evicted, 1);
        assert_eq!(r.t.open(), 2);
        let first = r.out.first().cloned();
        let Some(Record::Call(c)) = first else {
            panic!("no evicted record")
        };
        assert_eq!(
            (c.call_id.as_str(), c.timeout_reason),
            ("a", Some(TimeoutReason::Evicted))
        );
    }

    #[test]
    fn in_dialog_messages_without_a_known_dialog_are_counted_as_orphans() {
        let mut r = Run::new();
        r.at(0, CALLER, CALLEE, invite().req(Method::Bye)).at(
            1,
            CALLEE,
            CALLER,
            invite().resp(200),
        );
        assert_eq!(r.t.stats().orphans, 2);
        assert!(r.calls().is_empty());
    }

    #[test]
    fn offer_codecs_are_kept_when_no_answer_carried_sdp() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(486));
        assert_eq!(r.one().codecs.as_deref(), Some("PCMU,PCMA,telephone-event"));
    }

    fn message() -> M {
        let mut m = invite();
        m.msg.start = StartLine::Request {
            method: Method::Message,
            uri: uri("15559870002", "sms.example"),
        };
        m.msg.cseq = CSeq {
            seq: 20,
            method: Method::Message,
        };
        m.msg.content_type = Some(b"text/plain");
        m.msg.body = b"secret text";
        m.msg.content_length = Some(11);
        m
    }

    fn texts(r: &mut Run) -> Vec<MessageRecord> {
        r.t.finish(&mut r.out);
        r.out
            .drain(..)
            .filter_map(|x| match x {
                Record::Message(m) => Some(*m),
                Record::Call(_) => None,
            })
            .collect()
    }

    #[test]
    fn one_record_per_message_transaction_with_its_final_response() {
        let mut r = Run::new();
        let m = message();
        r.at(0, CALLER, CALLEE, m)
            .at(500 * MS, CALLER, CALLEE, m)
            .at(600 * MS, CALLEE, CALLER, m.resp(202));
        let t = texts(&mut r);
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(
            (
                t.call_id.as_str(),
                t.cseq,
                t.sent_at,
                t.answered_at,
                t.final_status
            ),
            ("call-1@host", 20, 0, Some(600 * MS), Some(202))
        );
        assert_eq!(
            (t.sender.as_str(), t.sender_domain.as_str()),
            ("+15551230001", "example.com")
        );
        assert_eq!(
            (t.recipient.as_str(), t.recipient_domain.as_str()),
            ("15559870002", "sms.example")
        );
        assert_eq!(
            (t.content_type.as_deref(), t.size_bytes),
            (Some("text/plain"), 11)
        );
    }

    #[test]
    fn a_message_awaiting_its_answer_is_saved_with_a_snapshot_and_resumes_into_one_record() {
        let mut r = Run::new();
        let m = message();
        r.at(0, CALLER, CALLEE, m);
        let saved = r.t.snapshot();
        assert_eq!(saved.len(), 1);
        // The saved form keeps fields, never the body.
        assert!(!saved[0].1.contains("secret text"), "{}", saved[0].1);
        let mut after = Run::new();
        assert_eq!(after.t.resume(saved), 0);
        after.at(700 * MS, CALLEE, CALLER, m.resp(200));
        let got = texts(&mut after);
        r.at(700 * MS, CALLEE, CALLER, m.resp(200));
        assert_eq!(got, texts(&mut r));
        assert_eq!(got[0].final_status, Some(200));
    }

    #[test]
    fn suspend_saves_a_message_awaiting_its_answer_instead_of_writing_it() {
        let mut r = Run::new();
        r.at(0, CALLER, CALLEE, message());
        let saved = r.t.suspend(&mut r.out);
        assert_eq!((saved.len(), r.out.len(), r.t.open()), (1, 0, 0));
    }

    #[test]
    fn suspend_writes_an_answered_message_rather_than_saving_it() {
        let mut r = Run::new();
        let m = message();
        r.at(0, CALLER, CALLEE, m)
            .at(100 * MS, CALLEE, CALLER, m.resp(200));
        let saved = r.t.suspend(&mut r.out);
        assert_eq!((saved.len(), r.out.len(), r.t.open()), (0, 1, 0));
    }

    #[test]
    fn changes_hold_only_what_was_touched_since_the_last_call() {
        let mut r = Run::new();
        r.t.track_changes();
        let (a, b) = (invite(), invite().call_id("call-2@host"));
        r.at(0, CALLER, CALLEE, a).at(S, CALLER, CALLEE, b);
        let first = r.t.changes();
        assert_eq!((first.upsert.len(), first.remove.len()), (2, 0));
        assert_eq!(r.t.changes(), OpenChanges::default());
        r.at(2 * S, CALLEE, CALLER, b.resp(180));
        let second = r.t.changes();
        let keys: Vec<&[u8]> = second.upsert.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"call-2@host\0ftag"[..]]);
        assert!(second.remove.is_empty());
    }

    #[test]
    fn changes_list_the_key_of_a_call_written_since_the_last_call() {
        let mut r = Run::new();
        r.t.track_changes();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(486));
        r.t.changes();
        r.t.advance(60 * S, &mut r.out);
        assert_eq!(r.out.len(), 1);
        let c = r.t.changes();
        assert_eq!(c.remove, [b"call-1@host\0ftag".to_vec()]);
        assert!(c.upsert.is_empty());
    }

    #[test]
    fn a_tracker_without_change_tracking_keeps_no_removed_keys() {
        let mut r = Run::new();
        let i = invite();
        r.at(0, CALLER, CALLEE, i)
            .at(S, CALLEE, CALLER, i.resp(486));
        r.t.advance(60 * S, &mut r.out);
        assert!(r.t.gone.is_none());
    }

    #[test]
    fn message_records_are_emitted_after_timer_f_without_waiting_for_the_end() {
        let mut r = Run::new();
        let m = message();
        r.at(0, CALLER, CALLEE, m)
            .at(100 * MS, CALLEE, CALLER, m.resp(200));
        r.t.advance(32 * S, &mut r.out);
        assert_eq!(r.out.len(), 1);
        assert_eq!(r.t.stats().text_messages, 1);
    }
}
