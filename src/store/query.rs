//! Reading records back: the filters of `callmeta calls` / `callmeta messages`, and the
//! decoding of rows into full records.
//!
//! Rows are outside data (another program, or an older callmeta, may have written them):
//! a value that does not decode is a [`StoreError::Corrupt`] naming the table, row and
//! column, never a panic and never a silently defaulted field.

use std::net::IpAddr;
use std::path::Path;

use rusqlite::types::{FromSql, Value, ValueRef};
use rusqlite::{Connection, Row, ToSql};

use super::{Query, StoreError};
use crate::call::{CallRecord, Disposition, EndedBy, MessageRecord, Side, TimeoutReason};
use crate::net::Transport;

/// The number normalisation of the expression indexes in schema.rs, character for
/// character: SQLite uses an index on an expression only for the identical expression.
macro_rules! norm {
    ($col:literal) => {
        concat!("ltrim(replace(replace(", $col, ", ' ', ''), '-', ''), '+')")
    };
}

/// The same normalisation applied to the number searched for.
pub(super) fn normalise_number(number: &str) -> String {
    let digits: String = number.chars().filter(|c| *c != ' ' && *c != '-').collect();
    digits.trim_start_matches('+').to_owned()
}

const CALL_SELECT: &str = "SELECT id, call_id, from_tag, started_at, ringing_at, answered_at,
    ended_at, last_seen_at, pdd_ms, disposition, final_status, ended_by, timeout_reason,
    hangup_side, reason_cause, caller, caller_domain, caller_name, callee, callee_domain,
    asserted_identity, src_ip, src_port, dst_ip, dst_port, transport, user_agent, server,
    codecs, source
    FROM calls";

const MESSAGE_SELECT: &str = "SELECT id, call_id, cseq, sent_at, answered_at, final_status,
    sender, sender_domain, recipient, recipient_domain, content_type, size_bytes, src_ip,
    src_port, dst_ip, dst_port, transport, source
    FROM messages";

/// Builds `WHERE ...` from the filters that are set. Only set filters appear in the SQL
/// (not `?1 IS NULL OR ...`), so SQLite can pick the time or number indexes.
fn filtered(
    select: &str,
    time_col: &str,
    number_exprs: &[&str],
    q: &Query,
) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(since) = q.since_us {
        params.push(Value::Integer(since));
        clauses.push(format!("{time_col} >= ?{}", params.len()));
    }
    if let Some(until) = q.until_us {
        params.push(Value::Integer(until));
        clauses.push(format!("{time_col} < ?{}", params.len()));
    }
    if let Some(number) = &q.number {
        params.push(Value::Text(normalise_number(number)));
        let n = params.len();
        let any: Vec<String> = number_exprs.iter().map(|e| format!("{e} = ?{n}")).collect();
        clauses.push(format!("({})", any.join(" OR ")));
    }
    let mut sql = select.to_owned();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    // id breaks ties so equal start times come back in a stable (insertion) order.
    sql.push_str(&format!(" ORDER BY {time_col}, id"));
    (sql, params)
}

pub(super) fn call_sql(q: &Query) -> (String, Vec<Value>) {
    filtered(
        CALL_SELECT,
        "started_at",
        &[norm!("caller"), norm!("callee"), norm!("asserted_identity")],
        q,
    )
}

pub(super) fn message_sql(q: &Query) -> (String, Vec<Value>) {
    filtered(
        MESSAGE_SELECT,
        "sent_at",
        &[norm!("sender"), norm!("recipient")],
        q,
    )
}

pub(super) fn calls(
    conn: &Connection,
    path: &Path,
    q: &Query,
) -> Result<Vec<CallRecord>, StoreError> {
    let (sql, params) = call_sql(q);
    fetch(conn, path, &sql, &params, |row| {
        decode_call(&Cols::new(row, path, "calls")?)
    })
}

pub(super) fn messages(
    conn: &Connection,
    path: &Path,
    q: &Query,
) -> Result<Vec<MessageRecord>, StoreError> {
    let (sql, params) = message_sql(q);
    fetch(conn, path, &sql, &params, |row| {
        decode_message(&Cols::new(row, path, "messages")?)
    })
}

fn fetch<T>(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: &[Value],
    decode: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let query_err = |source| StoreError::Query {
        path: path.to_owned(),
        source,
    };
    let mut stmt = conn.prepare_cached(sql).map_err(query_err)?;
    let params: Vec<&dyn ToSql> = params.iter().map(|v| v as &dyn ToSql).collect();
    let mut rows = stmt.query(params.as_slice()).map_err(query_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(query_err)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Typed access to one row's columns by name, with errors that say which value is wrong.
struct Cols<'a> {
    row: &'a Row<'a>,
    path: &'a Path,
    table: &'static str,
    rowid: i64,
}

impl<'a> Cols<'a> {
    fn new(row: &'a Row<'a>, path: &'a Path, table: &'static str) -> Result<Self, StoreError> {
        let mut cols = Cols {
            row,
            path,
            table,
            rowid: 0,
        };
        cols.rowid = cols.get("id", "an integer row id")?;
        Ok(cols)
    }

    fn corrupt(&self, column: &'static str, expected: &'static str) -> StoreError {
        let value = match self.row.get_ref(column) {
            Ok(ValueRef::Null) => "NULL".to_owned(),
            Ok(ValueRef::Integer(i)) => i.to_string(),
            Ok(ValueRef::Real(f)) => f.to_string(),
            Ok(ValueRef::Text(t)) => format!("'{}'", String::from_utf8_lossy(t)),
            Ok(ValueRef::Blob(b)) => format!("a {}-byte blob", b.len()),
            Err(e) => format!("nothing readable ({e})"),
        };
        StoreError::Corrupt {
            path: self.path.to_owned(),
            table: self.table,
            rowid: self.rowid,
            column,
            value,
            expected,
        }
    }

    fn get<T: FromSql>(
        &self,
        column: &'static str,
        expected: &'static str,
    ) -> Result<T, StoreError> {
        self.row
            .get(column)
            .map_err(|_| self.corrupt(column, expected))
    }

    /// An integer column that must fit `T` (a port, a status code, a CSeq).
    fn int<T: TryFrom<i64>>(
        &self,
        column: &'static str,
        expected: &'static str,
    ) -> Result<T, StoreError> {
        let v: i64 = self.get(column, expected)?;
        T::try_from(v).map_err(|_| self.corrupt(column, expected))
    }

    fn opt_int<T: TryFrom<i64>>(
        &self,
        column: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let v: Option<i64> = self.get(column, expected)?;
        v.map(|v| T::try_from(v).map_err(|_| self.corrupt(column, expected)))
            .transpose()
    }

    /// A TEXT column holding one of an enum's `as_str` names.
    fn name<T>(
        &self,
        column: &'static str,
        expected: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(column, expected)?;
        parse(&text).ok_or_else(|| self.corrupt(column, expected))
    }

    fn opt_name<T>(
        &self,
        column: &'static str,
        expected: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self.get(column, expected)?;
        text.map(|t| parse(&t).ok_or_else(|| self.corrupt(column, expected)))
            .transpose()
    }

    fn ip(&self, column: &'static str) -> Result<IpAddr, StoreError> {
        const EXPECTED: &str = "an IPv4 or IPv6 address";
        let text: String = self.get(column, EXPECTED)?;
        text.parse().map_err(|_| self.corrupt(column, EXPECTED))
    }
}

const TEXT: &str = "text";
const OPT_TEXT: &str = "text or NULL";
const TIME: &str = "integer microseconds";
const OPT_TIME: &str = "integer microseconds or NULL";
const PORT: &str = "a port number 0-65535";
const STATUS: &str = "NULL or an integer 0-65535";

fn decode_call(c: &Cols<'_>) -> Result<CallRecord, StoreError> {
    Ok(CallRecord {
        call_id: c.get("call_id", TEXT)?,
        from_tag: c.get("from_tag", TEXT)?,
        started_at: c.get("started_at", TIME)?,
        ringing_at: c.get("ringing_at", OPT_TIME)?,
        answered_at: c.get("answered_at", OPT_TIME)?,
        ended_at: c.get("ended_at", TIME)?,
        last_seen_at: c.get("last_seen_at", TIME)?,
        pdd_ms: c.get("pdd_ms", "integer milliseconds or NULL")?,
        disposition: c.name(
            "disposition",
            "answered, busy, no_answer or failed",
            Disposition::from_name,
        )?,
        final_status: c.opt_int("final_status", STATUS)?,
        ended_by: c.name(
            "ended_by",
            "bye, cancel, rejected or timeout",
            EndedBy::from_name,
        )?,
        timeout_reason: c.opt_name(
            "timeout_reason",
            "NULL or no_response, ring_timeout, session_expired, max_duration, \
             capture_end, evicted",
            TimeoutReason::from_name,
        )?,
        hangup_side: c.opt_name("hangup_side", "NULL, caller or callee", Side::from_name)?,
        reason_cause: c.opt_int("reason_cause", STATUS)?,
        caller: c.get("caller", TEXT)?,
        caller_domain: c.get("caller_domain", TEXT)?,
        caller_name: c.get("caller_name", OPT_TEXT)?,
        callee: c.get("callee", TEXT)?,
        callee_domain: c.get("callee_domain", TEXT)?,
        asserted_identity: c.get("asserted_identity", OPT_TEXT)?,
        src_ip: c.ip("src_ip")?,
        src_port: c.int("src_port", PORT)?,
        dst_ip: c.ip("dst_ip")?,
        dst_port: c.int("dst_port", PORT)?,
        transport: c.name(
            "transport",
            "udp, tcp, tls, ws, wss or sctp",
            Transport::from_name,
        )?,
        user_agent: c.get("user_agent", OPT_TEXT)?,
        server: c.get("server", OPT_TEXT)?,
        codecs: c.get("codecs", OPT_TEXT)?,
        source: c.get("source", TEXT)?,
    })
}

fn decode_message(c: &Cols<'_>) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        call_id: c.get("call_id", TEXT)?,
        cseq: c.int("cseq", "an integer 0-4294967295")?,
        sent_at: c.get("sent_at", TIME)?,
        answered_at: c.get("answered_at", OPT_TIME)?,
        final_status: c.opt_int("final_status", STATUS)?,
        sender: c.get("sender", TEXT)?,
        sender_domain: c.get("sender_domain", TEXT)?,
        recipient: c.get("recipient", TEXT)?,
        recipient_domain: c.get("recipient_domain", TEXT)?,
        content_type: c.get("content_type", OPT_TEXT)?,
        size_bytes: c.int("size_bytes", "a non-negative integer")?,
        src_ip: c.ip("src_ip")?,
        src_port: c.int("src_port", PORT)?,
        dst_ip: c.ip("dst_ip")?,
        dst_port: c.int("dst_port", PORT)?,
        transport: c.name(
            "transport",
            "udp, tcp, tls, ws, wss or sctp",
            Transport::from_name,
        )?,
        source: c.get("source", TEXT)?,
    })
}
