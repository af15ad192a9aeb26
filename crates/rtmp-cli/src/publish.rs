//! `rtmp publish`: sends an FLV file's tags as a live stream, paced by their timestamps; `Source`
//! (the file as a possibly looping message sequence) is shared with the bench publisher.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rtmp_proto::flv::{self, FlvTag};
use rtmp_proto::message::{csid, msg_type, RawMessage};

use crate::conn::{ConnEvent, Role, Single};
use crate::synth::Synthetic;
use rtmp_proto::url::RtmpUrl;
use crate::CliError;

/// How much unsent output we tolerate before waiting for the socket (keeps --fast bounded).
pub const MAX_BACKLOG: usize = 1 << 20;
const START_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An FLV file's tags, loaded once (and shared by every bench publisher): metadata already
/// wrapped as `@setDataFrame`, with what looping needs to know.
pub struct Media {
    tags: Vec<FlvTag>,
    base_ts: u32,
    /// How far each loop shifts timestamps: the file's span plus one average tag gap.
    cycle_ms: u32,
}

impl Media {
    pub fn load(path: &Path) -> Result<Media, CliError> {
        let data = std::fs::read(path).map_err(|source| CliError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let tags = flv::read_all(&data).map_err(|source| CliError::Flv {
            path: path.to_path_buf(),
            source,
        })?;
        if !tags
            .iter()
            .any(|t| t.tag_type == msg_type::AUDIO || t.tag_type == msg_type::VIDEO)
        {
            return Err(CliError::Other(format!(
                "{}: no audio or video tags",
                path.display()
            )));
        }
        Ok(Media::from_tags(tags))
    }

    /// Tags made in memory (e.g. a synthetic stream); `tags` is not empty.
    pub fn from_tags(mut tags: Vec<FlvTag>) -> Media {
        for t in &mut tags {
            if t.tag_type != msg_type::AUDIO && t.tag_type != msg_type::VIDEO {
                t.data = set_data_frame(&t.data);
            }
        }
        let base_ts = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
        let last_ts = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
        let span = last_ts.saturating_sub(base_ts);
        let gap = span / u32::try_from(tags.len().saturating_sub(1).max(1)).unwrap_or(u32::MAX);
        Media {
            tags,
            base_ts,
            cycle_ms: span.saturating_add(gap.max(1)),
        }
    }
}

/// A position in a `Media`: its tags rebased to start at 0 and, when looping, repeated with
/// growing timestamps.
pub struct Source {
    media: Rc<Media>,
    next: usize,
    loops: u32,
    looping: bool,
}

impl Source {
    pub fn new(media: Rc<Media>, looping: bool) -> Source {
        Source {
            media,
            next: 0,
            loops: 0,
            looping,
        }
    }

    pub fn load(path: &Path, looping: bool) -> Result<Source, CliError> {
        Ok(Source::new(Rc::new(Media::load(path)?), looping))
    }

    pub fn from_tags(tags: Vec<FlvTag>, looping: bool) -> Source {
        Source::new(Rc::new(Media::from_tags(tags)), looping)
    }

    /// The timestamp (ms from stream start) the next message will carry.
    pub fn next_ts(&self) -> Option<u32> {
        let tag = self.media.tags.get(self.next)?;
        Some(self.out_ts(tag))
    }

    fn out_ts(&self, tag: &FlvTag) -> u32 {
        tag.timestamp
            .saturating_sub(self.media.base_ts)
            .wrapping_add(self.loops.wrapping_mul(self.media.cycle_ms))
    }

    /// The next message and the chunk stream to send it on.
    pub fn take(&mut self, stream_id: u32) -> Option<(u32, RawMessage)> {
        let tag = self.media.tags.get(self.next)?;
        let cs = match tag.tag_type {
            msg_type::AUDIO => csid::AUDIO,
            msg_type::VIDEO => csid::VIDEO,
            _ => csid::DATA,
        };
        let msg = RawMessage::new(tag.tag_type, stream_id, self.out_ts(tag), tag.data.clone());
        self.next += 1;
        if self.next >= self.media.tags.len() && self.looping {
            self.next = 0;
            self.loops = self.loops.wrapping_add(1);
        }
        Some((cs, msg))
    }
}

/// Metadata goes to the server as `@setDataFrame("onMetaData", …)` so it keeps it for late
/// players, as FFmpeg sends it; other data (cue points) goes as is.
fn set_data_frame(data: &Bytes) -> Bytes {
    const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";
    if !data.starts_with(ON_METADATA) {
        return data.clone();
    }
    let mut b = BytesMut::with_capacity(data.len() + 16);
    b.put_slice(b"\x02\x00\x0d@setDataFrame");
    b.put_slice(data);
    b.freeze()
}

pub struct PublishArgs<'a> {
    pub url: &'a str,
    /// An FLV file, or else a synthetic stream.
    pub file: Option<&'a Path>,
    pub synthetic: Synthetic,
    pub looping: bool,
    pub fast: bool,
    pub fourcc: &'a [String],
}

pub fn run(args: &PublishArgs) -> Result<(), CliError> {
    let url = RtmpUrl::parse(args.url)?;
    let (mut source, what) = match args.file {
        Some(f) => (Source::load(f, args.looping)?, f.display().to_string()),
        None => {
            let s = args.synthetic;
            let what = format!("a synthetic stream ({} kbit/s, {} fps, GOP {})", s.video_kbps, s.fps, s.gop);
            (Source::from_tags(s.tags(), args.looping), what)
        }
    };
    let mut single = Single::open(&url, Role::Publish)?;
    single.conn.announce_fourcc(args.fourcc);
    single.wait_started(START_TIMEOUT)?;
    let sid = single.conn.stream_id();
    eprintln!(
        "publishing {} to {url}{}",
        what,
        if args.fast { " (fast)" } else { "" }
    );

    let start = Instant::now();
    let (mut video, mut audio, mut bytes) = (0u64, 0u64, 0u64);
    let mut next_report = start + Duration::from_secs(1);
    while let Some(ts) = source.next_ts() {
        let due = if args.fast {
            start
        } else {
            start + Duration::from_millis(u64::from(ts))
        };
        // Serve the socket until the tag is due and the backlog fits.
        loop {
            let now = Instant::now();
            if now >= next_report {
                eprintln!(
                    "[{:>4}s] sent {video} video, {audio} audio frames, {} kB, ts {ts} ms",
                    now.saturating_duration_since(start).as_secs(),
                    bytes / 1000
                );
                next_report += Duration::from_secs(1);
            }
            let backlog = single.conn.pending_out_len() > MAX_BACKLOG;
            if now >= due && !backlog {
                break;
            }
            let wait_until = if backlog {
                now + Duration::from_millis(50)
            } else {
                due
            };
            while let Some(ev) = single.wait_event(wait_until.min(next_report))? {
                if let ConnEvent::Status(code) = ev {
                    eprintln!("server: {code}");
                }
            }
        }
        if args.fast {
            single.poll_once(Duration::ZERO)?;
            while single.conn.next_event().is_some() {}
        }
        let Some((cs, msg)) = source.take(sid) else {
            break;
        };
        match msg.msg_type {
            msg_type::VIDEO => video += 1,
            msg_type::AUDIO => audio += 1,
            _ => {}
        }
        bytes += msg.payload.len() as u64;
        single.conn.send_media(cs, &msg)?;
    }
    single.conn.delete_stream()?;
    single.drain_output(Instant::now() + DRAIN_TIMEOUT)?;
    eprintln!(
        "done: {video} video, {audio} audio frames, {} kB in {:.1} s",
        bytes / 1000,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_gets_set_data_frame() {
        let mut meta = BytesMut::new();
        meta.put_slice(b"\x02\x00\x0aonMetaData\x05");
        let out = set_data_frame(&meta.clone().freeze());
        assert!(out.starts_with(b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData"));
        let cue = Bytes::from_static(b"\x02\x00\x0aonCuePoint");
        assert_eq!(set_data_frame(&cue), cue);
    }

    #[test]
    fn looping_source_keeps_timestamps_growing() {
        let dir = std::env::temp_dir().join(format!("rtmp-cli-test-{}.flv", std::process::id()));
        let mut b = BytesMut::new();
        flv::write_header(&mut b, true, true);
        flv::write_tag(&mut b, 9, 100, &[0x17, 0, 0, 0, 0]);
        flv::write_tag(&mut b, 8, 120, &[0xAF, 1]);
        flv::write_tag(&mut b, 9, 140, &[0x27, 1, 0, 0, 0]);
        std::fs::write(&dir, &b).unwrap();
        let mut s = Source::load(&dir, true).unwrap();
        let _ = std::fs::remove_file(&dir);
        let ts: Vec<u32> = (0..6).map(|_| s.take(1).unwrap().1.timestamp).collect();
        assert_eq!(ts, vec![0, 20, 40, 60, 80, 100]);
        assert_eq!(s.take(1).unwrap().0, csid::VIDEO);
        assert_eq!(s.take(1).unwrap().0, csid::AUDIO);
    }
}
