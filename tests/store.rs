//! The store as its two kinds of users see it: the daemon's writer thread, and a billing
//! reader in another connection that knows only docs/schema.md (plain SQLite, `mode=ro`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use callmeta::call::{CallRecord, Disposition, EndedBy, Record, Side};
use callmeta::net::Transport;
use callmeta::store::{Query, Store, Writer, WriterConfig};

fn answered_call(i: i64) -> CallRecord {
    let start = 1_795_963_396_123_456 + i * 60_000_000;
    CallRecord {
        call_id: format!("call-{i}@pbx"),
        from_tag: "ft".into(),
        started_at: start,
        ringing_at: Some(start + 300_000),
        answered_at: Some(start + 5_000_000),
        ended_at: start + 35_000_000,
        last_seen_at: start + 35_000_000,
        pdd_ms: Some(300),
        disposition: Disposition::Answered,
        final_status: Some(200),
        ended_by: EndedBy::Bye,
        timeout_reason: None,
        hangup_side: Some(Side::Caller),
        reason_cause: None,
        caller: "+4930123".into(),
        caller_domain: "pbx.example".into(),
        caller_name: None,
        callee: "4930999".into(),
        callee_domain: "carrier.example".into(),
        asserted_identity: None,
        src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        dst_port: 5060,
        transport: Transport::Udp,
        user_agent: None,
        server: None,
        codecs: Some("PCMA".into()),
        source: "eth0".into(),
    }
}

#[test]
fn billing_reader_with_mode_ro_reads_the_cdr_view_while_the_writer_thread_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callmeta.db");
    let writer = Writer::spawn(
        Store::open(&path).expect("open"),
        WriterConfig {
            batch_size: 2,
            flush_interval: Duration::from_millis(10),
            queue: 64,
        },
    );
    for i in 0..4 {
        writer
            .send(Record::Call(Box::new(answered_call(i))))
            .expect("send");
    }
    // Wait for the commits through the writer's own counters, not a fixed sleep.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while writer.stats().calls_written < 4 {
        assert!(std::time::Instant::now() < deadline, "{:?}", writer.stats());
        std::thread::sleep(Duration::from_millis(5));
    }

    // The billing recipe of docs/schema.md, with nothing from callmeta.
    let uri = format!("file:{}?mode=ro", path.display());
    let billing = rusqlite::Connection::open_with_flags(
        &uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("billing reader");
    let rows: Vec<(String, String, i64)> = billing
        .prepare(
            "SELECT call_id, started_at, billable_ms FROM cdr
             WHERE started_at_us >= ?1 ORDER BY started_at_us",
        )
        .expect("prepare")
        .query_map([1_795_963_396_123_456i64 + 60_000_000], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            (
                "call-1@pbx".into(),
                "2026-11-29T14:44:16.123456Z".into(),
                30_000
            ),
            (
                "call-2@pbx".into(),
                "2026-11-29T14:45:16.123456Z".into(),
                30_000
            ),
            (
                "call-3@pbx".into(),
                "2026-11-29T14:46:16.123456Z".into(),
                30_000
            ),
        ]
    );

    // The CLI's read-only store sees the same, and more as the writer goes on.
    let cli = Store::open_read_only(&path).expect("cli reader");
    writer
        .send(Record::Call(Box::new(answered_call(4))))
        .expect("send");
    let stats = writer.finish().expect("finish");
    assert_eq!(
        (stats.calls_written, stats.dropped, stats.unwritten),
        (5, 0, 0)
    );
    assert_eq!(cli.calls(&Query::default()).expect("calls").len(), 5);
    let n: i64 = billing
        .query_row("SELECT count(*) FROM cdr", [], |r| r.get(0))
        .expect("count after the writer closed");
    assert_eq!(n, 5);
}
