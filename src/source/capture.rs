//! Skeleton.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("todo")]
    Todo,
}
pub struct Frame;
pub struct CaptureFile;
