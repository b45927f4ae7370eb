//! The public capture corpus against tshark's view of every INVITE dialog.
//!
//! Reads `../shared/corpus/pcap/` (outside the repository; never copied into it) and
//! `expected-tshark.tsv` beside it: per Call-ID with an INVITE, tshark's first INVITE
//! time, final response code and time, and first BYE time. Each capture is ingested on
//! its own through the library pipeline; a dialog agrees when the final code, the
//! INVITE time, the answer time and the end time all match to the microsecond.
//!
//! When the corpus is absent the test says so and passes, except under CI (`CI=true`),
//! where a missing corpus is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use callmeta::call::{CallRecord, EndedBy, Record, TrackerConfig};
use callmeta::ingest;

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pcap");
    if dir.join("expected-tshark.tsv").is_file() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true but the corpus is missing at {}",
        dir.display()
    );
    eprintln!(
        "SKIPPED: capture corpus not found at {} (it lives beside the repository, in ../shared)",
        dir.display()
    );
    None
}

/// One row of expected-tshark.tsv.
#[derive(Debug)]
struct Expected {
    file: String,
    call_id: String,
    invite_us: i64,
    final_code: Option<u16>,
    final_us: Option<i64>,
    bye_us: Option<i64>,
    transport: String,
}

/// `1409236446.229683000` → microseconds (tshark prints nanoseconds; captures carry µs).
fn epoch_us(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac[..6].parse::<i64>().ok()?)
}

fn expected(dir: &Path) -> Vec<Expected> {
    let tsv =
        std::fs::read_to_string(dir.join("expected-tshark.tsv")).expect("read expected-tshark.tsv");
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Expected {
                file: f[0].to_string(),
                call_id: f[1].to_string(),
                invite_us: epoch_us(f[2]).expect("invite_epoch"),
                final_code: f[4].parse().ok(),
                final_us: epoch_us(f[5]),
                bye_us: epoch_us(f[6]),
                transport: f[13].to_string(),
            }
        })
        .collect()
}

fn records(path: &Path) -> Vec<CallRecord> {
    let mut calls = Vec::new();
    let summaries = ingest::ingest_files(&[path.to_path_buf()], TrackerConfig::default(), |r| {
        if let Record::Call(c) = r {
            calls.push(*c);
        }
        Ok::<(), ()>(())
    })
    .expect("sink never fails");
    for s in &summaries {
        eprintln!("  {}", s.line());
    }
    calls
}

/// What differs between our record and tshark's row, or `None` when they agree.
fn compare(e: &Expected, ours: &[&CallRecord]) -> Option<String> {
    // Several records per Call-ID happen with Call-ID reuse or several From-tags; tshark
    // has one row per Call-ID from its first INVITE, so compare with our earliest.
    let Some(c) = ours.iter().min_by_key(|c| c.started_at) else {
        return Some("no record".into());
    };
    let mut diffs = Vec::new();
    if c.started_at != e.invite_us {
        diffs.push(format!("started_at {} != {}", c.started_at, e.invite_us));
    }
    if c.final_status != e.final_code {
        diffs.push(format!(
            "final_status {:?} != {:?}",
            c.final_status, e.final_code
        ));
    }
    let answered = e.final_code.is_some_and(|code| (200..300).contains(&code));
    if answered && c.answered_at != e.final_us {
        diffs.push(format!(
            "answered_at {:?} != {:?}",
            c.answered_at, e.final_us
        ));
    }
    // Answered, or no final response at all: the BYE ends the call when there is one.
    let expected_end = if answered || e.final_code.is_none() {
        e.bye_us
    } else {
        e.final_us
    };
    match expected_end {
        Some(end) if c.ended_at != end => diffs.push(format!("ended_at {} != {end}", c.ended_at)),
        None if c.ended_by != EndedBy::Timeout => {
            diffs.push(format!("ended_by {:?}, tshark saw no end", c.ended_by))
        }
        _ => {}
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Disagreements we understand, by file: every one left is explained here.
fn explained(file: &str) -> Option<&'static str> {
    Some(match file {
        "sipnab__c07-sip-r2.cap" => "Microsoft Network Monitor 2 format: libpcap cannot read it",
        "ndpi__fuzz-2006-06-26-2594.pcap" => {
            "fuzzed copy of sngrep__aaa.pcap: mutated ether types, IP flags and SIP bytes \
             (a Call-ID `192&168`, an INVITE without Call-ID) that tshark's dissector \
             tolerates and we count as malformed; the unmutated original agrees 4/4"
        }
        "heplify__sip_ipv6_udp.pcap" => {
            "crafted: its packets are years apart (2012, 2018, 2023, then past 2070), so \
             Timer B on capture time closes the INVITE as no_response long before the 100 \
             and the 200 arrive; tshark ignores time"
        }
        "heplify__erspan_sip_ipv4_udp.pcapng" => {
            "decoded through GRE/ERSPAN; the SBC in this mirror keeps the Call-ID but rewrites \
             the From-tag between its public and private legs, so under CALL_MODEL each leg \
             is its own dialog and record; tshark's row merges the legs by Call-ID and takes \
             the public leg's earlier 200 and BYE"
        }
        "heplify__sip_sctp.pcap" => {
            "SIP over SCTP: the INVITE is one user message split over two DATA chunks, which \
             are not reassembled (counted as sctp_fragmented); single-chunk messages are read"
        }
        _ => return None,
    })
}

#[test]
fn corpus_invite_dialogs_agree_with_tshark() {
    let Some(dir) = corpus_dir() else { return };
    let rows = expected(&dir);
    let mut by_file: BTreeMap<&str, Vec<&Expected>> = BTreeMap::new();
    for row in &rows {
        by_file.entry(row.file.as_str()).or_default().push(row);
    }
    let (mut all, mut all_ok, mut udp, mut udp_ok) = (0, 0, 0, 0);
    let mut unexplained = Vec::new();
    for (file, rows) in &by_file {
        eprintln!("{file}");
        let calls = records(&dir.join(file));
        let mut ok = 0;
        for e in rows {
            let ours: Vec<&CallRecord> = calls.iter().filter(|c| c.call_id == e.call_id).collect();
            let is_udp = e.transport == "UDP";
            all += 1;
            udp += usize::from(is_udp);
            match compare(e, &ours) {
                None => {
                    ok += 1;
                    all_ok += 1;
                    udp_ok += usize::from(is_udp);
                }
                Some(diff) => match explained(file) {
                    Some(why) => eprintln!("  explained {}: {diff} ({why})", e.call_id),
                    None => {
                        eprintln!("  DISAGREE {}: {diff}", e.call_id);
                        unexplained.push(format!("{file} {}: {diff}", e.call_id));
                    }
                },
            }
        }
        eprintln!("  agreement {ok}/{}", rows.len());
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    eprintln!(
        "TOTAL: {all_ok}/{all} INVITE dialogs agree ({:.1}%)",
        pct(all_ok, all)
    );
    eprintln!(
        "UDP:   {udp_ok}/{udp} INVITE dialogs agree ({:.1}%)",
        pct(udp_ok, udp)
    );
    assert!(pct(udp_ok, udp) >= 95.0, "UDP agreement below 95%");
    // Issue 3: TCP, WebSocket, IPv6, fragmented and tunnelled captures count too.
    assert!(pct(all_ok, all) >= 98.0, "overall agreement below 98%");
    assert!(
        unexplained.is_empty(),
        "unexplained disagreements:\n{}",
        unexplained.join("\n")
    );
}
