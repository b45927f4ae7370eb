//! Skeleton.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("todo")]
    Todo,
}
pub enum SkipKind {}
pub struct Decoder;
