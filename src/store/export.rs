//! Exports of call and message records: CSV and JSON lines for billing, an aligned table
//! for terminals.
//!
//! CSV and JSON lines use exactly the field names of the call model (CALL_MODEL.md), in a
//! fixed order ([`CALL_FIELDS`], [`MESSAGE_FIELDS`]): billing systems parse them, so a
//! rename or reorder is a breaking change. Times are RFC 3339 UTC with microseconds
//! (`crate::time::format_us`); absent values are JSON `null` / an empty CSV cell.
//!
//! Must never: write a field not in the call model (no from_tag, no internal ids), or
//! alter a value to suit a spreadsheet (a leading `+` is a phone number, not a formula).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use crate::call::{CallRecord, MessageRecord};
use crate::time::format_us;

/// Output format of `callmeta calls` / `callmeta messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal (a subset of the fields).
    Table,
    /// RFC 4180 CSV with a header row, every call-model field.
    Csv,
    /// One JSON object per line, every call-model field.
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown format `{0}`: expected table, csv or jsonl")]
pub struct UnknownFormat(String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Call fields of CSV and JSON lines, in order.
pub const CALL_FIELDS: [&str; 29] = [
    "call_id",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "billable_ms",
    "pdd_ms",
    "disposition",
    "final_status",
    "ended_by",
    "timeout_reason",
    "hangup_side",
    "reason_cause",
    "caller",
    "caller_domain",
    "caller_name",
    "callee",
    "callee_domain",
    "asserted_identity",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "transport",
    "user_agent",
    "server",
    "codecs",
    "source",
];

/// Message fields of CSV and JSON lines, in order.
pub const MESSAGE_FIELDS: [&str; 17] = [
    "call_id",
    "cseq",
    "sent_at",
    "answered_at",
    "final_status",
    "sender",
    "sender_domain",
    "recipient",
    "recipient_domain",
    "content_type",
    "size_bytes",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "transport",
    "source",
];

/// One exported value: JSON needs to know numbers from text from null.
enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Text(Cow<'a, str>),
}

fn text(s: &str) -> Cell<'_> {
    Cell::Text(Cow::Borrowed(s))
}
fn opt_text(s: Option<&str>) -> Cell<'_> {
    s.map_or(Cell::Null, text)
}
fn time(us: i64) -> Cell<'static> {
    Cell::Text(Cow::Owned(format_us(us)))
}
fn opt_time(us: Option<i64>) -> Cell<'static> {
    us.map_or(Cell::Null, time)
}
fn opt_int<T: Into<i64>>(v: Option<T>) -> Cell<'static> {
    v.map_or(Cell::Null, |v| Cell::Int(v.into()))
}

/// A call's values, in [`CALL_FIELDS`] order.
fn call_cells(c: &CallRecord) -> [Cell<'_>; 29] {
    [
        text(&c.call_id),
        time(c.started_at),
        opt_time(c.ringing_at),
        opt_time(c.answered_at),
        time(c.ended_at),
        Cell::Int(c.duration_ms()),
        Cell::Int(c.billable_ms()),
        opt_int(c.pdd_ms),
        text(c.disposition.as_str()),
        opt_int(c.final_status),
        text(c.ended_by.as_str()),
        opt_text(c.timeout_reason.map(|t| t.as_str())),
        opt_text(c.hangup_side.map(|s| s.as_str())),
        opt_int(c.reason_cause),
        text(&c.caller),
        text(&c.caller_domain),
        opt_text(c.caller_name.as_deref()),
        text(&c.callee),
        text(&c.callee_domain),
        opt_text(c.asserted_identity.as_deref()),
        Cell::Text(Cow::Owned(c.src_ip.to_string())),
        Cell::Int(c.src_port.into()),
        Cell::Text(Cow::Owned(c.dst_ip.to_string())),
        Cell::Int(c.dst_port.into()),
        text(c.transport.as_str()),
        opt_text(c.user_agent.as_deref()),
        opt_text(c.server.as_deref()),
        opt_text(c.codecs.as_deref()),
        text(&c.source),
    ]
}

/// A message's values, in [`MESSAGE_FIELDS`] order.
fn message_cells(m: &MessageRecord) -> [Cell<'_>; 17] {
    [
        text(&m.call_id),
        Cell::Int(m.cseq.into()),
        time(m.sent_at),
        opt_time(m.answered_at),
        opt_int(m.final_status),
        text(&m.sender),
        text(&m.sender_domain),
        text(&m.recipient),
        text(&m.recipient_domain),
        opt_text(m.content_type.as_deref()),
        Cell::UInt(m.size_bytes),
        Cell::Text(Cow::Owned(m.src_ip.to_string())),
        Cell::Int(m.src_port.into()),
        Cell::Text(Cow::Owned(m.dst_ip.to_string())),
        Cell::Int(m.dst_port.into()),
        text(m.transport.as_str()),
        text(&m.source),
    ]
}

pub fn write_calls(out: &mut dyn Write, format: Format, calls: &[CallRecord]) -> io::Result<()> {
    match format {
        Format::Csv => write_csv(out, &CALL_FIELDS, calls.iter().map(call_cells)),
        Format::Jsonl => write_jsonl(out, &CALL_FIELDS, calls.iter().map(call_cells)),
        Format::Table => write_table(
            out,
            &[
                "started_at",
                "duration",
                "caller -> callee",
                "disposition",
                "status",
                "ended_by",
                "hangup",
                "call_id",
            ],
            calls.iter().map(|c| {
                vec![
                    format_us(c.started_at),
                    human_duration(c.duration_ms()),
                    format!("{} -> {}", c.caller, c.callee),
                    c.disposition.as_str().to_owned(),
                    c.final_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    c.ended_by.as_str().to_owned(),
                    c.hangup_side.map_or("-", |s| s.as_str()).to_owned(),
                    c.call_id.clone(),
                ]
            }),
        ),
    }
}

pub fn write_messages(
    out: &mut dyn Write,
    format: Format,
    messages: &[MessageRecord],
) -> io::Result<()> {
    match format {
        Format::Csv => write_csv(out, &MESSAGE_FIELDS, messages.iter().map(message_cells)),
        Format::Jsonl => write_jsonl(out, &MESSAGE_FIELDS, messages.iter().map(message_cells)),
        Format::Table => write_table(
            out,
            &[
                "sent_at",
                "sender -> recipient",
                "status",
                "content_type",
                "bytes",
                "call_id",
            ],
            messages.iter().map(|m| {
                vec![
                    format_us(m.sent_at),
                    format!("{} -> {}", m.sender, m.recipient),
                    m.final_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    m.content_type.clone().unwrap_or_else(|| "-".to_owned()),
                    m.size_bytes.to_string(),
                    m.call_id.clone(),
                ]
            }),
        ),
    }
}

/// `1:02:03` / `2:03.456` / `0.120` style: hours only when there are any.
fn human_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{sign}{h}:{m:02}:{s:02}.{frac:03}")
    } else {
        format!("{sign}{m}:{s:02}.{frac:03}")
    }
}

/// RFC 4180: CRLF line ends; a field with a comma, a double quote, CR or LF is quoted
/// and its quotes doubled.
fn write_csv<'a, const N: usize>(
    out: &mut dyn Write,
    header: &[&str; N],
    rows: impl Iterator<Item = [Cell<'a>; N]>,
) -> io::Result<()> {
    write_csv_row(out, header.iter().map(|h| Cow::Borrowed(*h)))?;
    for row in rows {
        write_csv_row(
            out,
            row.into_iter().map(|cell| match cell {
                Cell::Null => Cow::Borrowed(""),
                Cell::Int(i) => Cow::Owned(i.to_string()),
                Cell::UInt(u) => Cow::Owned(u.to_string()),
                Cell::Text(t) => t,
            }),
        )?;
    }
    Ok(())
}

fn write_csv_row<'a>(
    out: &mut dyn Write,
    fields: impl Iterator<Item = Cow<'a, str>>,
) -> io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

/// One object per line, keys in the fields' order (serde_json's map would sort them).
fn write_jsonl<'a, const N: usize>(
    out: &mut dyn Write,
    fields: &[&str; N],
    rows: impl Iterator<Item = [Cell<'a>; N]>,
) -> io::Result<()> {
    for row in rows {
        out.write_all(b"{")?;
        for (i, (name, cell)) in fields.iter().zip(row).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, name)?;
            out.write_all(b":")?;
            match cell {
                Cell::Null => out.write_all(b"null")?,
                Cell::Int(n) => write!(out, "{n}")?,
                Cell::UInt(n) => write!(out, "{n}")?,
                Cell::Text(t) => serde_json::to_writer(&mut *out, t.as_ref())?,
            }
        }
        out.write_all(b"}\n")?;
    }
    Ok(())
}

/// Left-aligned columns two spaces apart, widths from the widest value (in chars).
fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> io::Result<()> {
    // Terminal output: control characters from the wire must not move the cursor.
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows.map(|r| r.iter().map(|s| clean(s)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in &rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::*;

    fn export(format: Format, calls: &[CallRecord]) -> String {
        let mut out = Vec::new();
        write_calls(&mut out, format, calls).expect("export");
        String::from_utf8(out).expect("utf-8")
    }

    fn export_messages(format: Format, messages: &[MessageRecord]) -> String {
        let mut out = Vec::new();
        write_messages(&mut out, format, messages).expect("export");
        String::from_utf8(out).expect("utf-8")
    }

    /// A minimal RFC 4180 reader, to check the writer against the grammar rather than
    /// against its own output.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = vec![];
        let mut row = vec![];
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {
                    assert_eq!(chars.next(), Some('\n'), "bare CR outside quotes");
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, '\n') => panic!("bare LF outside quotes"),
                (false, c) => field.push(c),
            }
        }
        assert!(
            field.is_empty() && row.is_empty(),
            "last row not terminated"
        );
        rows
    }

    #[test]
    fn format_names_parse_and_print() {
        for f in [Format::Table, Format::Csv, Format::Jsonl] {
            assert_eq!(f.to_string().parse::<Format>().expect("parse"), f);
        }
        assert_eq!("csv".parse::<Format>().expect("csv"), Format::Csv);
        let err = "xml".parse::<Format>().expect_err("xml");
        assert!(err.to_string().contains("table, csv or jsonl"), "{err}");
        use clap::ValueEnum;
        let names: Vec<String> = Format::value_variants()
            .iter()
            .filter_map(|f| f.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(names, ["table", "csv", "jsonl"]);
    }

    #[test]
    fn csv_calls_have_the_call_model_header_in_order() {
        let text = export(Format::Csv, &[]);
        assert_eq!(
            text,
            "call_id,started_at,ringing_at,answered_at,ended_at,duration_ms,billable_ms,\
             pdd_ms,disposition,final_status,ended_by,timeout_reason,hangup_side,\
             reason_cause,caller,caller_domain,caller_name,callee,callee_domain,\
             asserted_identity,src_ip,src_port,dst_ip,dst_port,transport,user_agent,server,\
             codecs,source\r\n"
        );
    }

    #[test]
    fn csv_messages_have_the_call_model_header_in_order() {
        let text = export_messages(Format::Csv, &[]);
        assert_eq!(
            text,
            "call_id,cseq,sent_at,answered_at,final_status,sender,sender_domain,recipient,\
             recipient_domain,content_type,size_bytes,src_ip,src_port,dst_ip,dst_port,\
             transport,source\r\n"
        );
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let c = CallRecord {
            user_agent: Some("line1\nline2\r\nline3".into()),
            server: Some("plain".into()),
            ..full_call()
        };
        let text = export(Format::Csv, &[c]);
        // full_call's caller_name is `Alice, "the" caller` and its codecs contain commas.
        assert!(text.contains(r#","Alice, ""the"" caller","#), "{text}");
        assert!(text.contains(r#","PCMU,PCMA,telephone-event","#), "{text}");
        assert!(text.contains("\"line1\nline2\r\nline3\""), "{text}");
        assert!(text.contains(",plain,"), "{text}");
        let rows = parse_csv(&text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].len(), CALL_FIELDS.len());
        let field = |name: &str| {
            let i = CALL_FIELDS.iter().position(|f| *f == name).expect("field");
            rows[1][i].clone()
        };
        assert_eq!(field("caller_name"), "Alice, \"the\" caller");
        assert_eq!(field("user_agent"), "line1\nline2\r\nline3");
        assert_eq!(field("started_at"), "2026-11-29T14:43:16.123456Z");
        assert_eq!(field("caller"), "+49 30-1234567");
        assert_eq!(field("dst_ip"), "2001:db8::20");
        assert_eq!(field("billable_ms"), full_call().billable_ms().to_string());
    }

    #[test]
    fn csv_nulls_are_empty_cells() {
        let rows = parse_csv(&export(Format::Csv, &[bare_call()]));
        let row = &rows[1];
        for name in [
            "ringing_at",
            "answered_at",
            "pdd_ms",
            "final_status",
            "caller_name",
            "codecs",
        ] {
            let i = CALL_FIELDS.iter().position(|f| *f == name).expect("field");
            assert_eq!(row[i], "", "{name}");
        }
        let i = CALL_FIELDS
            .iter()
            .position(|f| *f == "billable_ms")
            .expect("field");
        assert_eq!(row[i], "0");
    }

    #[test]
    fn jsonl_calls_have_the_call_model_keys_in_order_with_typed_values() {
        let text = export(Format::Jsonl, &[full_call(), bare_call()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            // Key order as written (serde_json's own map would sort them).
            let keys: Vec<&str> = CALL_FIELDS
                .iter()
                .map(|k| {
                    let at = line.find(&format!("\"{k}\":")).expect("key present");
                    (at, *k)
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect();
            assert_eq!(keys, CALL_FIELDS);
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(v.as_object().map(|o| o.len()), Some(CALL_FIELDS.len()));
        }
        let full: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(full["started_at"], "2026-11-29T14:43:16.123456Z");
        assert_eq!(full["final_status"], 200);
        assert_eq!(full["src_port"], 5062);
        assert_eq!(full["duration_ms"], full_call().duration_ms());
        assert_eq!(full["caller_name"], "Alice, \"the\" caller");
        assert_eq!(full["timeout_reason"], "session_expired");
        let bare: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
        for name in [
            "ringing_at",
            "answered_at",
            "pdd_ms",
            "final_status",
            "timeout_reason",
            "hangup_side",
            "reason_cause",
            "caller_name",
            "asserted_identity",
            "user_agent",
            "server",
            "codecs",
        ] {
            assert!(
                bare[name].is_null(),
                "{name} should be null: {}",
                bare[name]
            );
        }
    }

    #[test]
    fn jsonl_messages_have_the_call_model_keys_in_order() {
        let text = export_messages(Format::Jsonl, &[full_message(), bare_message()]);
        for line in text.lines() {
            let mut last = 0;
            for k in MESSAGE_FIELDS {
                let at = line.find(&format!("\"{k}\":")).expect("key present");
                assert!(at >= last, "{k} out of order in {line}");
                last = at;
            }
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(v.as_object().map(|o| o.len()), Some(MESSAGE_FIELDS.len()));
        }
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["cseq"], 4_000_000_000u64);
        assert_eq!(first["size_bytes"], 160);
        assert_eq!(first["sent_at"], crate::time::format_us(T0 + 7));
    }

    #[test]
    fn table_aligns_columns_and_neutralises_control_characters() {
        let sneaky = CallRecord {
            caller: "\u{1b}[2J100".into(),
            ..bare_call()
        };
        let text = export(Format::Table, &[full_call(), sneaky]);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("started_at"));
        // Every column starts at the same offset on every line.
        let col = |line: &str, needle: &str| line.find(needle).expect(needle);
        let at = col(lines[0], "disposition");
        assert_eq!(col(lines[1], "answered"), at);
        assert_eq!(col(lines[2], "failed"), at);
        assert!(lines[1].contains("1:05.432"), "{}", lines[1]);
    }
}
