//! Codec configuration parsers: what the sequence headers of a stream say about its media
//! (dimensions, profile, frame rate), for metadata, stat pages and segmenters.

pub mod aac;
pub mod avc;
pub mod bits;
pub mod hevc;
pub mod mp3;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Truncated,
    Invalid(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated => write!(f, "codec configuration truncated"),
            CodecError::Invalid(what) => write!(f, "invalid codec configuration: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}
