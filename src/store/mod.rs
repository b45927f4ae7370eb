//! Skeleton of the SQLite store; the store work replaces this file's bodies.

use std::path::Path;
use std::time::Duration;

use crate::call::{CallRecord, MessageRecord, Record};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store not implemented yet")]
    Todo,
}

/// Filters of `callmeta calls` / `callmeta messages`.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub number: Option<String>,
}

pub struct Store;

impl Store {
    pub fn open(_path: &Path) -> Result<Store, StoreError> {
        Err(StoreError::Todo)
    }
    pub fn open_read_only(_path: &Path) -> Result<Store, StoreError> {
        Err(StoreError::Todo)
    }
    pub fn write_batch(&mut self, _records: &[Record]) -> Result<(), StoreError> {
        Err(StoreError::Todo)
    }
    pub fn calls(&self, _q: &Query) -> Result<Vec<CallRecord>, StoreError> {
        Err(StoreError::Todo)
    }
    pub fn messages(&self, _q: &Query) -> Result<Vec<MessageRecord>, StoreError> {
        Err(StoreError::Todo)
    }
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue: usize,
}

#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    pub calls_written: u64,
    pub messages_written: u64,
    pub batches: u64,
    pub dropped: u64,
}

pub struct Writer;

impl Writer {
    pub fn spawn(_store: Store, _cfg: WriterConfig) -> Writer {
        Writer
    }
    pub fn send(&self, _r: Record) -> Result<(), StoreError> {
        Err(StoreError::Todo)
    }
    pub fn finish(self) -> Result<WriterStats, StoreError> {
        Err(StoreError::Todo)
    }
}

pub mod export {
    //! Skeleton.
    use crate::call::{CallRecord, MessageRecord};
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Format {
        Table,
        Csv,
        Jsonl,
    }
    impl std::str::FromStr for Format {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "table" => Ok(Format::Table),
                "csv" => Ok(Format::Csv),
                "jsonl" => Ok(Format::Jsonl),
                _ => Err(s.to_string()),
            }
        }
    }
    pub fn write_calls(
        _out: &mut dyn std::io::Write,
        _f: Format,
        _c: &[CallRecord],
    ) -> std::io::Result<()> {
        Ok(())
    }
    pub fn write_messages(
        _out: &mut dyn std::io::Write,
        _f: Format,
        _c: &[MessageRecord],
    ) -> std::io::Result<()> {
        Ok(())
    }
}
