//! `rtmp play`: receives a stream, prints a stats line per second and optionally saves it as FLV.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtmp_proto::flv;
use rtmp_proto::message::msg_type;

use crate::conn::{ConnError, ConnEvent, Role, Single, Stage};
use rtmp_proto::url::RtmpUrl;
use crate::CliError;

pub struct PlayArgs<'a> {
    pub url: &'a str,
    pub duration: Option<f64>,
    pub out: Option<&'a Path>,
    /// Stop when no media arrived for this long.
    pub idle_timeout: f64,
    pub fourcc: &'a [String],
}

struct FlvOut {
    path: PathBuf,
    w: BufWriter<File>,
    buf: BytesMut,
}

impl FlvOut {
    fn create(path: &Path) -> Result<FlvOut, CliError> {
        let file = File::create(path).map_err(|source| CliError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let mut out = FlvOut {
            path: path.to_path_buf(),
            w: BufWriter::new(file),
            buf: BytesMut::new(),
        };
        flv::write_header(&mut out.buf, true, true);
        out.write_buf()?;
        Ok(out)
    }

    fn tag(&mut self, tag_type: u8, ts: u32, data: &[u8]) -> Result<(), CliError> {
        flv::write_tag(&mut self.buf, tag_type, ts, data);
        self.write_buf()
    }

    fn write_buf(&mut self) -> Result<(), CliError> {
        let r = self.w.write_all(&self.buf);
        self.buf.clear();
        r.map_err(|source| CliError::File {
            path: self.path.clone(),
            source,
        })
    }

    fn flush(&mut self) -> Result<(), CliError> {
        self.w.flush().map_err(|source| CliError::File {
            path: self.path.clone(),
            source,
        })
    }
}

#[derive(Default)]
struct Counters {
    video: u64,
    audio: u64,
    bytes: u64,
}

/// Returns whether any audio or video arrived.
pub fn run(args: &PlayArgs) -> Result<bool, CliError> {
    let url = RtmpUrl::parse(args.url)?;
    let mut out = args.out.map(FlvOut::create).transpose()?;
    let begin = Instant::now();
    let end = args.duration.map(|d| begin + crate::secs(d.max(0.0)));
    let idle = crate::secs(args.idle_timeout.max(0.1));
    let mut single = Single::open(&url, Role::Play)?;
    single.conn.announce_fourcc(args.fourcc);

    let mut total = Counters::default();
    let mut second = Counters::default();
    let mut last_ts = 0u32;
    let mut last_media = Instant::now();
    let mut next_tick = begin + Duration::from_secs(1);
    let mut ended = None::<String>;
    loop {
        let now = Instant::now();
        if now >= next_tick {
            eprintln!(
                "[{:>4}s] video {:>3} fr  audio {:>3} fr  {:>6} kbit/s  ts {last_ts} ms",
                now.saturating_duration_since(begin).as_secs(),
                second.video,
                second.audio,
                second.bytes * 8 / 1000
            );
            second = Counters::default();
            next_tick += Duration::from_secs(1);
            if let Some(o) = out.as_mut() {
                o.flush()?;
            }
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if now >= last_media + idle {
            ended = Some(format!("no media for {:.1} s", idle.as_secs_f64()));
            break;
        }
        let deadline = [Some(next_tick), end, Some(last_media + idle)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_tick);
        let ev = match single.wait_event(deadline) {
            Ok(ev) => ev,
            // A live stream's normal end: the server hangs up after we started.
            Err(ConnError::Closed {
                stage: Stage::Active,
            }) => {
                ended = Some("server closed the connection".into());
                break;
            }
            Err(e) => return Err(e.into()),
        };
        match ev {
            None => {}
            Some(ConnEvent::Started) => eprintln!("playing {url}"),
            Some(ConnEvent::Status(code)) => {
                eprintln!("server: {code}");
                if code == "NetStream.Play.UnpublishNotify" && end.is_none() {
                    ended = Some("stream unpublished".into());
                    break;
                }
            }
            Some(ConnEvent::Media(m)) => {
                match m.msg_type {
                    msg_type::VIDEO => {
                        total.video += 1;
                        second.video += 1;
                    }
                    msg_type::AUDIO => {
                        total.audio += 1;
                        second.audio += 1;
                    }
                    _ => {}
                }
                if m.msg_type != msg_type::AMF0_DATA {
                    last_media = Instant::now();
                    last_ts = m.timestamp;
                }
                let n = m.payload.len() as u64;
                total.bytes += n;
                second.bytes += n;
                if let Some(o) = out.as_mut() {
                    o.tag(m.msg_type, m.timestamp, &m.payload)?;
                }
            }
        }
    }
    if let Some(o) = out.as_mut() {
        o.flush()?;
    }
    let secs = begin.elapsed().as_secs_f64();
    eprintln!(
        "done{}: {} video, {} audio frames, {} kB in {secs:.1} s ({} kbit/s)",
        ended.map(|r| format!(" ({r})")).unwrap_or_default(),
        total.video,
        total.audio,
        total.bytes / 1000,
        (total.bytes as f64 * 8.0 / 1000.0 / secs.max(0.001)) as u64
    );
    Ok(total.video + total.audio > 0)
}
