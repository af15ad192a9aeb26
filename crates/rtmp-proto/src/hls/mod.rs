//! HLS without IO: media playlists (window, TARGETDURATION, continuation), segment encryption and
//! program date-times. The MPEG-TS segments themselves come from `crate::mpegts`.

pub mod clock;
pub mod crypt;
pub mod ll;
pub mod playlist;

pub use playlist::{Playlist, Restored, SegmentEntry};
