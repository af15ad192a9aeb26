//! MPEG-TS for HLS: RTMP audio and video messages become 188-byte transport stream packets, cut into
//! segments at keyframes (`segmenter`), plus a strict demuxer that tests and tools read them back with.
//!
//! `es` turns FLV payloads into elementary streams (Annex B video, ADTS / MPEG audio), `mux` wraps
//! them into PES and TS packets, `segmenter` decides where segments start and what goes in them.

pub mod demux;
pub mod es;
pub mod mux;
pub mod segmenter;

pub use segmenter::{MediaInfo, SegEvent, Segmenter, SegmenterConf};

/// Every TS packet is this long and starts with `SYNC_BYTE`.
pub const TS_PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;

/// The PIDs FFmpeg and nginx-rtmp use, so tools that expect them find the streams.
pub const PAT_PID: u16 = 0x0000;
pub const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x0100;
pub const AUDIO_PID: u16 = 0x0101;
/// The one program of our streams.
pub const PROGRAM_NUMBER: u16 = 1;

/// PES stream ids: the first video and the first audio stream.
pub const VIDEO_STREAM_ID: u8 = 0xE0;
pub const AUDIO_STREAM_ID: u8 = 0xC0;

/// PMT stream types (ISO/IEC 13818-1 Table 2-34).
pub mod stream_type {
    pub const MPEG1_AUDIO: u8 = 0x03;
    pub const MPEG2_AUDIO: u8 = 0x04;
    pub const AAC_ADTS: u8 = 0x0F;
    pub const H264: u8 = 0x1B;
    pub const HEVC: u8 = 0x24;
}

/// PTS, DTS and PCR base run at 90 kHz and wrap at 33 bits.
pub const TICKS_PER_MS: u64 = 90;
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
