//! Kamailio `sipdump` module text files (PBX_LOGS.md §4, `sipdump_write.c`,
//! `sipdump_data_print()`): a `====================` line, `key: value` lines (`tag:
//! rcv|snd`, `time: <epoch>.<usec>`, `proto: udp ipv4`, `srcip`, `srcport`, `dstip`,
//! `dstport`), `~~~~~~~~~~~~~~~~~~~~`, the raw message with its CRLFs, and 20 `|`. Both
//! ends and an exact UTC time are given: no time zone, year or local address is needed.

use std::net::{IpAddr, SocketAddr};

use super::text::{self, chomp, MsgBuf};
use super::{Direction, Framer, FramerStats, LogMessage};
use crate::net::Transport;

const START: &[u8] = b"====================";
const DATA: &[u8] = b"~~~~~~~~~~~~~~~~~~~~";
const END: &[u8] = b"||||||||||||||||||||";

#[derive(Debug, Clone, Copy, Default)]
struct Head {
    direction: Option<Direction>,
    ts_us: Option<i64>,
    transport: Option<Transport>,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dst_ip: Option<IpAddr>,
    dst_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Head,
    Data,
}

pub struct Sipdump {
    stats: FramerStats,
    msg: MsgBuf,
    state: State,
    head: Head,
}

fn epoch_us(v: &[u8]) -> Option<i64> {
    let (secs, frac) = match memchr::memchr(b'.', v) {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    let secs = i64::try_from(text::number(secs, 12)?).ok()?;
    let mut us = 0i64;
    for k in 0..6 {
        us = us * 10
            + frac
                .get(k)
                .map_or(0, |d| i64::from(d.wrapping_sub(b'0') % 10));
    }
    Some(secs * 1_000_000 + us)
}

impl Sipdump {
    pub fn new() -> Sipdump {
        Sipdump {
            stats: FramerStats::default(),
            msg: MsgBuf::default(),
            state: State::Idle,
            head: Head::default(),
        }
    }

    fn field(&mut self, line: &[u8]) {
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let v = text::trim(&line[colon + 1..]);
        let ip = || std::str::from_utf8(v).ok()?.parse::<IpAddr>().ok();
        let port = || u16::try_from(text::number(v, 5)?).ok();
        let h = &mut self.head;
        match &line[..colon] {
            b"tag" => {
                h.direction = match v {
                    b"rcv" => Some(Direction::Received),
                    b"snd" => Some(Direction::Sent),
                    _ => None,
                }
            }
            b"time" => h.ts_us = epoch_us(v),
            b"proto" => {
                let name = v.split(|&b| b == b' ').next().unwrap_or_default();
                h.transport = text::transport(name);
            }
            b"srcip" => h.src_ip = ip(),
            b"srcport" => h.src_port = port(),
            b"dstip" => h.dst_ip = ip(),
            b"dstport" => h.dst_port = port(),
            _ => {}
        }
    }

    fn emit(&mut self, terminated: bool, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.state = State::Idle;
        let h = self.head;
        let Some(direction) = h.direction else {
            self.stats.bad_headers += 1;
            return;
        };
        if self.msg.is_empty() {
            return;
        }
        let endpoints = match (h.src_ip, h.src_port, h.dst_ip, h.dst_port) {
            (Some(si), Some(sp), Some(di), Some(dp)) => {
                Some((SocketAddr::new(si, sp), SocketAddr::new(di, dp)))
            }
            _ => None,
        };
        let m = LogMessage {
            ts_us: h.ts_us,
            precision_us: 1,
            direction,
            peer: None,
            endpoints,
            transport: h.transport,
            payload: self.msg.bytes(),
            logged_len: None,
            truncated: !terminated,
        };
        self.stats.hand_on(&m, out);
    }
}

impl Framer for Sipdump {
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.stats.lines += 1;
        match self.state {
            State::Data => {
                // The data is written raw (`%.*s`): when it does not end with a newline the
                // closing pipes are glued to its last line.
                if let Some(rest) = chomp(line).strip_suffix(END) {
                    self.msg.push_raw(rest);
                    self.emit(true, out);
                } else if chomp(line) == START {
                    self.emit(false, out);
                    self.head = Head::default();
                    self.state = State::Head;
                } else {
                    self.msg.push_raw(line);
                    self.msg.push_raw(b"\n");
                }
            }
            State::Head => {
                let line = chomp(line);
                if line == DATA {
                    self.msg.clear();
                    self.state = State::Data;
                } else if line == START {
                    self.head = Head::default();
                } else {
                    self.field(line);
                }
            }
            State::Idle => {
                if chomp(line) == START {
                    self.head = Head::default();
                    self.state = State::Head;
                }
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        if self.state == State::Data {
            self.emit(false, out);
        }
        self.state = State::Idle;
    }

    fn in_message(&self) -> bool {
        self.state != State::Idle
    }

    fn stats(&self) -> &FramerStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_both_ends_and_the_exact_time() {
        let log = "====================\ntag: rcv\npid: 7\nprocess: 1\ntime: 1700000000.000042\ndate: Tue Nov 14 22:13:20 2023\nproto: udp ipv4\nsrcip: 127.0.0.1\nsrcport: 5060\ndstip: 127.0.0.2\ndstport: 5070\n~~~~~~~~~~~~~~~~~~~~\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n||||||||||||||||||||\n";
        let mut f = Sipdump::new();
        let mut got = Vec::new();
        for l in log.split_inclusive('\n') {
            f.line(l.strip_suffix('\n').unwrap_or(l).as_bytes(), &mut |m| {
                got.push((m.ts_us, m.endpoints, m.payload.to_vec()))
            });
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Some(1_700_000_000_000_042));
        assert_eq!(
            got[0].1,
            Some((
                "127.0.0.1:5060".parse().unwrap(),
                "127.0.0.2:5070".parse().unwrap()
            ))
        );
        assert_eq!(
            got[0].2,
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
