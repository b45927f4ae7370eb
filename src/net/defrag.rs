//! IPv4 and IPv6 reassembly (RFC 791 §3.2, RFC 8200 §4.5), bounded.
//!
//! A large INVITE (big SDP, long Via/Record-Route paths) leaves a host as several IP
//! fragments, and only the first one carries the UDP header. The reassembly itself is
//! etherparse's [`IpDefragBuf`] (ordering, overlaps, the final length); etherparse's own
//! `IpDefragPool` is not used because it cannot be bounded (it exposes neither its size nor
//! an eviction order, and is not OOM-safe by itself). This table adds what it lacks: a cap
//! on datagrams and on bytes, oldest dropped first, a timeout from the first fragment, and a
//! counter for each. It must never keep an incomplete datagram past its timeout or beyond
//! the caps, and never allocates for a fragment of a datagram it already holds beyond the
//! datagram's own buffer (buffers are recycled).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpFragOffset, IpNumber};

/// Identifies the fragments of one datagram: RFC 791 §3.2 (source, destination, protocol,
/// identification); IPv6 uses its 32-bit identification the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

/// One fragment as read from its IP header.
#[derive(Clone, Copy)]
pub struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    /// The protocol of the reassembled payload (UDP, TCP, ...).
    pub proto: u8,
    pub offset: IpFragOffset,
    pub more: bool,
    pub payload: &'a [u8],
}

impl std::fmt::Debug for Fragment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fragment")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("id", &self.id)
            .field("proto", &self.proto)
            .field("offset", &self.offset)
            .field("more", &self.more)
            .field("payload", &crate::privacy::Redacted(self.payload))
            .finish()
    }
}

/// A reassembled datagram payload; hand its buffer back with [`Defragmenter::recycle`].
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Reassembled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembled")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("proto", &self.proto)
            .field("data", &crate::privacy::Redacted(&self.data))
            .finish()
    }
}

/// What the table did, for the health counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Incomplete datagrams dropped at the timeout.
    pub timed_out: u64,
    /// Incomplete datagrams dropped, oldest first, to stay within the caps.
    pub evicted: u64,
    /// Fragments refused by the reassembly (misaligned, past 64 KiB, conflicting ends);
    /// the datagram they belonged to is dropped.
    pub invalid: u64,
}

struct Entry {
    buf: IpDefragBuf,
    serial: u64,
    first_ts: i64,
    bytes: usize,
}

/// Buffers kept for reuse are at most this large, so the spares stay small.
const SPARE_MAX_CAPACITY: usize = 16 << 10;
const SPARE_MAX: usize = 32;
/// Bookkeeping per held datagram (map entry, order slot), counted against the byte cap.
const ENTRY_OVERHEAD: usize = 128;

/// A bounded table of datagrams being reassembled.
pub struct Defragmenter {
    table: HashMap<FragKey, Entry>,
    /// Creation order, for oldest-first eviction and the timeout; entries already gone are
    /// skipped lazily (their serial no longer matches).
    order: VecDeque<(u64, FragKey)>,
    next_serial: u64,
    bytes: usize,
    spare: Vec<(Vec<u8>, Vec<IpFragRange>)>,
    max_datagrams: usize,
    max_bytes: usize,
    timeout_us: i64,
    pub stats: DefragStats,
}

impl Defragmenter {
    pub fn new(max_datagrams: usize, max_bytes: usize, timeout_us: i64) -> Defragmenter {
        Defragmenter {
            table: HashMap::new(),
            order: VecDeque::new(),
            next_serial: 0,
            bytes: 0,
            spare: Vec::new(),
            max_datagrams: max_datagrams.max(1),
            max_bytes,
            timeout_us,
            stats: DefragStats::default(),
        }
    }

    /// Datagrams currently held incomplete.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Bytes currently held (buffers plus bookkeeping).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a fragment seen at `ts_us`; returns the datagram when this fragment completes it.
    pub fn add(&mut self, ts_us: i64, f: &Fragment<'_>) -> Option<Reassembled> {
        self.stats.fragments += 1;
        self.expire(ts_us);
        let key = FragKey {
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: f.proto,
        };
        if !self.table.contains_key(&key) {
            if self.table.len() >= self.max_datagrams {
                self.evict_oldest();
            }
            let (data, sections) = self.spare.pop().unwrap_or_default();
            let serial = self.next_serial;
            self.next_serial += 1;
            self.order.push_back((serial, key));
            let bytes = ENTRY_OVERHEAD + data.capacity();
            self.bytes += bytes;
            self.table.insert(
                key,
                Entry {
                    buf: IpDefragBuf::new(IpNumber(f.proto), data, sections),
                    serial,
                    first_ts: ts_us,
                    bytes,
                },
            );
        }
        let entry = self.table.get_mut(&key)?;
        let before = entry.bytes;
        let added = entry.buf.add(f.offset, f.more, f.payload);
        entry.bytes = ENTRY_OVERHEAD + entry.buf.data().capacity();
        self.bytes = self.bytes + entry.bytes - before;
        if added.is_err() {
            self.stats.invalid += 1;
            self.remove(&key);
            return None;
        }
        if entry.buf.is_complete() {
            let entry = self.take(&key)?;
            let (data, sections) = entry.buf.take_bufs();
            self.keep_spare(Vec::new(), sections);
            self.stats.reassembled += 1;
            self.compact_order();
            return Some(Reassembled {
                src: f.src,
                dst: f.dst,
                proto: f.proto,
                data,
            });
        }
        while self.bytes > self.max_bytes && !self.table.is_empty() {
            self.evict_oldest();
        }
        None
    }

    /// Hands a reassembled buffer back for reuse.
    pub fn recycle(&mut self, data: Vec<u8>) {
        self.keep_spare(data, Vec::new());
    }

    /// Drops every datagram whose first fragment is older than the timeout at `now_us`.
    pub fn expire(&mut self, now_us: i64) {
        while let Some(&(serial, key)) = self.order.front() {
            match self.table.get(&key) {
                Some(e) if e.serial == serial => {
                    if now_us.saturating_sub(e.first_ts) <= self.timeout_us {
                        break;
                    }
                    self.stats.timed_out += 1;
                    self.remove(&key);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((serial, key)) = self.order.pop_front() {
            if self.table.get(&key).is_some_and(|e| e.serial == serial) {
                self.stats.evicted += 1;
                self.remove(&key);
                return;
            }
        }
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(entry) = self.take(key) {
            let (data, sections) = entry.buf.take_bufs();
            self.keep_spare(data, sections);
        }
    }

    fn take(&mut self, key: &FragKey) -> Option<Entry> {
        let entry = self.table.remove(key)?;
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        Some(entry)
    }

    fn keep_spare(&mut self, mut data: Vec<u8>, mut sections: Vec<IpFragRange>) {
        if self.spare.len() >= SPARE_MAX || data.capacity() > SPARE_MAX_CAPACITY {
            return;
        }
        data.clear();
        sections.clear();
        self.spare.push((data, sections));
    }

    /// Completed datagrams leave stale slots in `order`; drop them once they dominate, so
    /// the queue stays proportional to the table.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.table.len() + 64 {
            let table = &self.table;
            self.order
                .retain(|(serial, key)| table.get(key).is_some_and(|e| e.serial == *serial));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: u32, offset_bytes: u16, more: bool, payload: &[u8]) -> Fragment<'_> {
        Fragment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id,
            proto: 17,
            offset: IpFragOffset::try_new(offset_bytes / 8).unwrap(),
            more,
            payload,
        }
    }

    #[test]
    fn fragments_in_any_order_give_the_datagram() {
        let data: Vec<u8> = (0..40u8).collect();
        let mut d = Defragmenter::new(16, 1 << 20, 30_000_000);
        assert!(d.add(0, &frag(7, 24, false, &data[24..])).is_none());
        assert!(d.add(1, &frag(7, 0, true, &data[..16])).is_none());
        let r = d
            .add(2, &frag(7, 16, true, &data[16..24]))
            .expect("complete");
        assert_eq!(r.data, data);
        assert_eq!(r.proto, 17);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.bytes(), 0);
    }

    #[test]
    fn an_incomplete_datagram_is_dropped_at_the_timeout() {
        let mut d = Defragmenter::new(16, 1 << 20, 1_000);
        d.add(0, &frag(1, 0, true, &[0; 8]));
        d.expire(2_000);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.stats.timed_out, 1);
        assert_eq!(d.bytes(), 0);
    }

    #[test]
    fn the_oldest_datagram_is_evicted_at_the_datagram_cap() {
        let mut d = Defragmenter::new(2, 1 << 20, 30_000_000);
        for id in 0..3 {
            d.add(i64::from(id), &frag(id, 0, true, &[0; 8]));
        }
        assert_eq!(d.pending(), 2);
        assert_eq!(d.stats.evicted, 1);
        // Datagram 0 is gone: its last fragment alone does not complete it.
        assert!(d.add(5, &frag(0, 8, false, &[1; 8])).is_none());
    }

    #[test]
    fn a_misaligned_middle_fragment_drops_its_datagram() {
        let mut d = Defragmenter::new(4, 1 << 20, 30_000_000);
        d.add(0, &frag(1, 0, true, &[0; 8]));
        d.add(0, &frag(1, 8, true, &[0; 5]));
        assert_eq!(d.stats.invalid, 1);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_fragment_far_into_the_datagram_counts_its_buffer_against_the_byte_cap() {
        let mut d = Defragmenter::new(100, 32 << 10, 30_000_000);
        d.add(0, &frag(1, 60_000, true, &[0; 8]));
        assert_eq!(d.pending(), 0, "a 60 KB buffer exceeds the 32 KiB cap");
        assert_eq!(d.stats.evicted, 1);
        assert_eq!(d.bytes(), 0);
    }
}
