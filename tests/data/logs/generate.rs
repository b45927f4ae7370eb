//! Writes SIP messages as each PBX would log them, following the format strings quoted
//! in ../shared/PBX_LOGS.md exactly: the generator behind tests/logs.rs (and the sample
//! logs beside this file). Input: the datagrams of a capture, seen from one end (the
//! "PBX", `local`); output: the log text.
//!
//! Used by the test binary only (`#[path]`); every function is a format from the doc:
//! - `pjsip_file`: §1.1 block in §1.3 `format_log_default` records, any `dateformat`;
//! - `pjsip_console`: §1.3 console with `timestamp=yes` (the header on every line);
//! - `pjsip_json`: `formatter = json`;
//! - `chansip_file`: §2 `handle_request_do` / `send_response` / `send_request` blocks,
//!   received text through `lws2sws()` (no CRs, runs of blanks collapsed, final LF
//!   dropped), plus a NAT keep-alive read;
//! - `freeswitch`: §3.1 stamp and §3.2 layouts (indented ≤2019, 2019–2022 without the
//!   trailing newline, 2022+ with it), with dated FreeSWITCH lines in local time;
//! - `sipdump`: §4 `sipdump_data_print()`;
//! - `cisco`: §5 with sequence numbers and `datetime msec localtime`.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The transport payloads of a capture file, in capture order.
pub fn packets_of(path: &std::path::Path) -> Vec<Packet> {
    use callmeta::net::{Decoder, LinkType};
    use callmeta::source::CaptureFile;
    let mut cap = CaptureFile::open(path).expect("open capture");
    let link = LinkType::from_dlt(cap.dlt()).expect("supported link type");
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    while let Some(frame) = cap.next_frame().expect("read capture") {
        let data = frame.data.to_vec();
        decoder.decode(link, frame.ts_us, &data, |dg| {
            out.push(Packet {
                ts_us: dg.ts_us,
                src: dg.src,
                dst: dg.dst,
                payload: dg.payload.to_vec(),
            })
        });
    }
    out
}

/// One captured datagram.
#[derive(Debug, Clone)]
pub struct Packet {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Local date-time parts of `us` in `tz`.
fn civil(us: i64, tz: &TimeZone) -> jiff::civil::DateTime {
    tz.to_datetime(Timestamp::from_microsecond(us).expect("valid time"))
}

/// An Asterisk `dateformat`: `%b %e %T` (default), `%F %T`, `%F %T.%3q` or `%F %T.%6q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    Default,
    Iso,
    IsoMillis,
    IsoMicros,
}

impl DateFormat {
    pub fn precision_us(self) -> i64 {
        match self {
            DateFormat::Default | DateFormat::Iso => 1_000_000,
            DateFormat::IsoMillis => 1000,
            DateFormat::IsoMicros => 1,
        }
    }

    pub fn format(self, us: i64, tz: &TimeZone) -> String {
        let d = civil(us, tz);
        let frac = us.rem_euclid(1_000_000);
        let (y, mo, da, h, mi, s) = (
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
        );
        match self {
            DateFormat::Default => {
                format!(
                    "{} {:>2} {h:02}:{mi:02}:{s:02}",
                    MONTHS[mo as usize - 1],
                    da
                )
            }
            DateFormat::Iso => format!("{y}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}"),
            DateFormat::IsoMillis => {
                format!(
                    "{y}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}.{:03}",
                    frac / 1000
                )
            }
            DateFormat::IsoMicros => format!("{y}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}.{frac:06}"),
        }
    }
}

fn is_request(p: &Packet) -> bool {
    !p.payload.starts_with(b"SIP/2.0 ")
}

/// Whether the PBX (at `local`) received the packet; `None` if it is not one of its own.
fn received(p: &Packet, local: SocketAddr) -> Option<bool> {
    if p.dst == local {
        Some(true)
    } else if p.src == local {
        Some(false)
    } else {
        None
    }
}

fn text(p: &Packet) -> &str {
    std::str::from_utf8(&p.payload).expect("SIPp payloads are text")
}

/// `TYPE:addr:port` as `pj_sockaddr_print(...,3)` writes it (IPv6 bracketed).
fn peer(p: &Packet, rx: bool) -> SocketAddr {
    if rx {
        p.src
    } else {
        p.dst
    }
}

/// A verbose line from another subsystem, as Asterisk interleaves them.
fn noise_line(i: usize) -> &'static str {
    ["    -- Executing [15559870002@from-trunk:1] Dial(\"PJSIP/trunk-00000001\", \"PJSIP/alice\") in new stack",
     "       > 0x7f0c2c00 -- Strict RTP learning after remote address set to: 127.0.0.1:40000",
     "    -- PJSIP/alice-00000002 is ringing"][i % 3]
}

/// chan_pjsip in the `full` log file (§1.1 in §1.3's `[%s] %s[%d]%s %s: %s`).
pub fn pjsip_file(packets: &[Packet], local: SocketAddr, fmt: DateFormat, tz: &TimeZone) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let date = fmt.format(p.ts_us, tz);
        let kind = if is_request(p) { "request" } else { "response" };
        let (word, via) = if rx {
            ("Received", "from")
        } else {
            ("Transmitting", "to")
        };
        let _ = writeln!(
            out,
            "[{date}] VERBOSE[{}][C-{:08x}] res_pjsip_logger.c: <--- {word} SIP {kind} ({} bytes) {via} UDP:{} --->",
            2000 + i % 3,
            10 + i / 4,
            p.payload.len(),
            peer(p, rx)
        );
        out.push_str(text(p));
        out.push('\n');
        let _ = writeln!(
            out,
            "[{date}] VERBOSE[{}][C-{:08x}] pbx.c: {}",
            3000 + i,
            10,
            noise_line(i)
        );
    }
    out
}

/// chan_pjsip on the console with `timestamp=yes`: `[date] ` on every line (§1.3).
pub fn pjsip_console(packets: &[Packet], local: SocketAddr, tz: &TimeZone) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let date = DateFormat::Default.format(p.ts_us, tz);
        let kind = if is_request(p) { "request" } else { "response" };
        let (word, via) = if rx {
            ("Received", "from")
        } else {
            ("Transmitting", "to")
        };
        let block = format!(
            "<--- {word} SIP {kind} ({} bytes) {via} UDP:{} --->\n{}\n",
            p.payload.len(),
            peer(p, rx),
            text(p)
        );
        for line in block.split_inclusive('\n') {
            let _ = write!(out, "[{date}] {line}");
        }
        let _ = writeln!(out, "[{date}] {}", noise_line(i));
    }
    out
}

/// chan_pjsip through `formatter = json` (`format_log_json()`), one object per line.
pub fn pjsip_json(packets: &[Packet], local: SocketAddr, tz: &TimeZone) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let kind = if is_request(p) { "request" } else { "response" };
        let (word, via) = if rx {
            ("Received", "from")
        } else {
            ("Transmitting", "to")
        };
        let message = format!(
            "<--- {word} SIP {kind} ({} bytes) {via} UDP:{} --->\n{}\n",
            p.payload.len(),
            peer(p, rx),
            text(p)
        );
        let rec = serde_json::json!({
            "hostname": "pbx",
            "timestamp": DateFormat::IsoMillis.format(p.ts_us, tz),
            "identifiers": {"lwp": 2000 + i, "callid": ""},
            "logmsg": {
                "location": {"filename": "res_pjsip_logger.c", "function": "pj_log", "line": 120},
                "level": "VERBOSE",
                "message": message,
            }
        });
        let _ = writeln!(out, "{rec}");
    }
    out
}

/// `lws2sws()` as chan_sip runs it on received text with `pedantic=yes` (§2): CRs
/// removed, runs of blanks in headers collapsed to one space, the final LF dropped.
fn lws2sws(msg: &str) -> String {
    let no_cr = msg.replace('\r', "");
    let (headers, body) = match no_cr.find("\n\n") {
        Some(i) => (&no_cr[..i + 1], &no_cr[i + 1..]),
        None => (&no_cr[..], ""),
    };
    let mut out = String::new();
    for line in headers.split_inclusive('\n') {
        let mut prev_blank = false;
        for c in line.chars() {
            let blank = c == ' ' || c == '\t';
            if !(blank && prev_blank) {
                out.push(if blank { ' ' } else { c });
            }
            prev_blank = blank;
        }
    }
    out.push_str(body);
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// chan_sip `sip set debug on` in the `full` file: the prefixed line's text is the empty
/// first line of `"\n<--- …"`; sent requests print `Reliably Transmitting (no NAT) to
/// addr:`; a keep-alive read is added at the start (§2).
pub fn chansip_file(
    packets: &[Packet],
    local: SocketAddr,
    fmt: DateFormat,
    tz: &TimeZone,
) -> String {
    let mut out = String::new();
    if let Some(first) = packets.first() {
        let date = fmt.format(first.ts_us, tz);
        let _ = write!(
            out,
            "[{date}] VERBOSE[1500] chan_sip.c: \n<--- SIP read from UDP:{} --->\n\n<------------->\n[{date}] VERBOSE[1500] chan_sip.c: --- (0 headers 0 lines) Nat keepalive ---\n",
            first.src
        );
    }
    for (i, p) in packets.iter().enumerate() {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let date = fmt.format(p.ts_us, tz);
        let prefix = format!(
            "[{date}] VERBOSE[{}][C-{:08x}] chan_sip.c: ",
            1500 + i % 2,
            3
        );
        if rx {
            let _ = write!(
                out,
                "{prefix}\n<--- SIP read from UDP:{} --->\n{}\n<------------->\n",
                p.src,
                lws2sws(text(p))
            );
            let _ = writeln!(out, "{prefix}--- (12 headers 0 lines) ---");
        } else if is_request(p) {
            let _ = write!(
                out,
                "{prefix}Reliably Transmitting (no NAT) to {}:\n{}\n---\n",
                p.dst,
                text(p)
            );
        } else {
            let _ = write!(
                out,
                "{prefix}\n<--- Transmitting (no NAT) to {} --->\n{}\n<------------>\n",
                p.dst,
                text(p)
            );
        }
        let _ = writeln!(
            out,
            "[{date}] VERBOSE[{}] chan_sip.c: Scheduling destruction of SIP dialog",
            1500
        );
    }
    out
}

/// FreeSWITCH layouts (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsLayout {
    Indented,
    NoTrailingNewline,
    Current,
}

/// sofia-sip siptrace with FreeSWITCH's dated lines around it, local time in `tz`.
pub fn freeswitch(
    packets: &[Packet],
    local: SocketAddr,
    layout: FsLayout,
    tz: &TimeZone,
) -> String {
    let dashes = "-".repeat(72);
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let d = local_time(p.ts_us, tz);
        if i % 3 == 0 {
            let _ = writeln!(
                out,
                "{} 97.53% [INFO] mod_dialplan_xml.c:639 Processing Alice Example <+15551230001>->15559870002 in context public",
                d.0
            );
        }
        let (what, via) = if rx { ("recv", "from") } else { ("send", "to") };
        let addr = peer(p, rx);
        let _ = writeln!(
            out,
            "{what} {} bytes {via} udp/[{}]:{} at {}:",
            p.payload.len(),
            addr.ip(),
            addr.port(),
            d.1
        );
        let lf = text(p).replace("\r\n", "\n");
        match layout {
            FsLayout::Indented => {
                let _ = writeln!(out, "   {dashes}");
                let body = lf.strip_suffix('\n').unwrap_or(&lf);
                for line in body.split('\n') {
                    let _ = writeln!(out, "   {line}");
                }
                let _ = writeln!(out, "   {dashes}");
            }
            FsLayout::NoTrailingNewline => {
                let _ = write!(out, "{dashes}\n{lf}");
            }
            FsLayout::Current => {
                let _ = write!(out, "{dashes}\n{lf}\n");
            }
        }
    }
    out
}

/// (`YYYY-MM-DD hh:mm:ss.uuuuuu`, `hh:mm:ss.uuuuuu`) in local time.
fn local_time(us: i64, tz: &TimeZone) -> (String, String) {
    let d = civil(us, tz);
    let frac = us.rem_euclid(1_000_000);
    let tod = format!(
        "{:02}:{:02}:{:02}.{frac:06}",
        d.hour(),
        d.minute(),
        d.second()
    );
    (
        format!("{}-{:02}-{:02} {tod}", d.year(), d.month(), d.day()),
        tod,
    )
}

/// Kamailio sipdump text (§4), as seen by a proxy at `local` (all datagrams it sees).
pub fn sipdump(packets: &[Packet], local: SocketAddr) -> String {
    let mut out = String::new();
    for p in packets {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let secs = p.ts_us.div_euclid(1_000_000);
        let d = civil(p.ts_us, &TimeZone::UTC);
        let asctime = format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                [d.weekday().to_monday_zero_offset() as usize],
            MONTHS[d.month() as usize - 1],
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.year()
        );
        let family = if p.src.is_ipv6() { "ipv6" } else { "ipv4" };
        let _ = write!(
            out,
            "====================\ntag: {}\npid: 4242\nprocess: 3\ntime: {secs}.{:06}\ndate: {asctime}\nproto: udp {family}\nsrcip: {}\nsrcport: {}\ndstip: {}\ndstport: {}\n~~~~~~~~~~~~~~~~~~~~\n{}||||||||||||||||||||\n",
            if rx { "rcv" } else { "snd" },
            p.ts_us.rem_euclid(1_000_000),
            p.src.ip(),
            p.src.port(),
            p.dst.ip(),
            p.dst.port(),
            text(p)
        );
    }
    out
}

/// Cisco `debug ccsip messages` with `service sequence-numbers` and `service timestamps
/// debug datetime msec localtime` (§5), plus CCAPI lines between messages.
pub fn cisco(packets: &[Packet], local: SocketAddr, tz: &TimeZone) -> String {
    let mut out = String::new();
    let mut seq = 7000;
    for p in packets {
        let Some(rx) = received(p, local) else {
            continue;
        };
        let d = civil(p.ts_us, tz);
        let stamp = format!(
            "{} {:>2} {:02}:{:02}:{:02}.{:03}",
            MONTHS[d.month() as usize - 1],
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            p.ts_us.rem_euclid(1_000_000) / 1000
        );
        seq += 17;
        let _ = writeln!(
            out,
            "{seq:06}: {stamp}: //-1/xxxxxxxxxxxx/SIP/Msg/ccsipDisplayMsg:"
        );
        let _ = writeln!(out, "{}", if rx { "Received: " } else { "Sent: " });
        out.push_str(&text(p).replace("\r\n", "\n"));
        out.push('\n');
        seq += 3;
        let _ = writeln!(
            out,
            "{seq:06}: {stamp}: //89/286BC7C68020/CCAPI/cc_api_call_disconnected:\n   Cause Value=16, Interface=0x7FF64F4542E8, Call Id=90"
        );
    }
    out
}
