//! Live DASH (issue 17): the segment timeline of one stream and its dynamic MPD, sans-IO.
//!
//! The CMAF packager (`crate::cmaf`) cuts per-track segments and reports each one's number, start
//! (`tfdt`, track timescale: video 90000, audio its sample rate) and real duration; the nginx glue
//! writes the files, feeds [`Timeline::push_segment`] once a segment is complete on disk, writes
//! [`Mpd::render`]'s text atomically and deletes what [`Timeline::take_removable`] returns. No
//! clock is read here: every call takes the wall-clock time (`now_ms`, ms since the Unix epoch).
//!
//! The MPD follows the DASH-IF live rules (isoff-live profile, `type="dynamic"`): a fixed
//! `availabilityStartTime`, a `publishTime` that rises with every version, `SegmentTemplate` +
//! `SegmentTimeline` per AdaptationSet whose `S@t`/`S@d` are the fragments' own `tfdt` and real
//! durations, one Period per continuous run of timestamps, and a `UTCTiming` after the Periods.

pub mod codecs;
pub mod mpd;
pub mod naming;
pub mod time;
pub mod timeline;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod xmlcheck;

pub use codecs::{aac_codec_string, avc_codec_string, avc_codec_string_from_sps, hevc_codec_string, FrameRate};
pub use mpd::{Mpd, MpdConfig, UtcTiming};
pub use naming::Naming;
pub use timeline::{Period, Segment, Timeline, TimelineConfig, TimelineError};

/// The two tracks a stream can have; each is its own AdaptationSet and file series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Track {
    Video,
    Audio,
}

impl Track {
    pub const ALL: [Track; 2] = [Track::Video, Track::Audio];

    pub fn index(self) -> usize {
        match self {
            Track::Video => 0,
            Track::Audio => 1,
        }
    }

    /// The file extension of the C module's layout.
    pub fn extension(self) -> &'static str {
        match self {
            Track::Video => "m4v",
            Track::Audio => "m4a",
        }
    }
}

/// What the MPD says about a video track (its AdaptationSet and Representation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// The track timescale of the packager's `tfdt`/durations (90000).
    pub timescale: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`.
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<FrameRate>,
    /// Sample aspect ratio; `1:1` when the SPS says nothing.
    pub sar: Option<(u32, u32)>,
    /// Bits per second (e.g. `videodatarate` metadata × 1000); measured from segment sizes if absent.
    pub bandwidth: Option<u64>,
}

/// What the MPD says about an audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// The track timescale (the sample rate the packager counts in).
    pub timescale: u32,
    /// e.g. `mp4a.40.2`.
    pub codecs: String,
    /// Output sampling rate (`audioSamplingRate`).
    pub sample_rate: u32,
    /// The `AudioChannelConfiguration` value (ISO/IEC 23001-8 ChannelConfiguration).
    pub channels: u32,
    pub bandwidth: Option<u64>,
}

/// One track's description; its variant says which track it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackInfo {
    Video(VideoInfo),
    Audio(AudioInfo),
}

impl TrackInfo {
    pub fn track(&self) -> Track {
        match self {
            TrackInfo::Video(_) => Track::Video,
            TrackInfo::Audio(_) => Track::Audio,
        }
    }

    pub fn timescale(&self) -> u32 {
        match self {
            TrackInfo::Video(v) => v.timescale,
            TrackInfo::Audio(a) => a.timescale,
        }
    }

    pub fn bandwidth(&self) -> Option<u64> {
        match self {
            TrackInfo::Video(v) => v.bandwidth,
            TrackInfo::Audio(a) => a.bandwidth,
        }
    }
}
