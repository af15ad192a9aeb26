//! One publishing stream's DASH output: its audio and video go through the CMAF packager, each
//! segment is written under a temporary name and renamed once complete, then listed in the MPD,
//! which is itself replaced atomically; segments that left the window are deleted after the
//! time players may still ask for them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rtmp_proto::cmaf::{CmafConf, CmafEvent, CmafPackager, TrackKind};
use rtmp_proto::dash::{AudioInfo, Mpd, MpdConfig, Naming, Timeline, TimelineConfig, Track, TrackInfo, UtcTiming, VideoInfo};

use crate::ngx::log::Log;
use crate::{log_error, log_info};

use super::conf::{Clock, DashAppConf};

/// A segment being written (one per track).
struct OpenSegment {
    number: u64,
    tmp: PathBuf,
    file: BufWriter<File>,
    bytes: u64,
}

pub struct DashWriter {
    root: PathBuf,
    pub naming: Naming,
    packager: CmafPackager,
    timeline: Timeline,
    mpd: Mpd,
    open: [Option<OpenSegment>; 2],
    /// The AAC AudioSpecificConfig, for the MPD's channel count and profile.
    asc: Option<Vec<u8>>,
    events: Vec<CmafEvent>,
    log: Log,
    /// An IO error stopped this stream's DASH output (RTMP goes on).
    broken: bool,
    unsupported_logged: bool,
}

fn wall_ms() -> u64 {
    crate::ngx::shm::wall_ms()
}

use crate::core::names::write_atomic;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn track_of(k: TrackKind) -> Track {
    match k {
        TrackKind::Video => Track::Video,
        TrackKind::Audio => Track::Audio,
    }
}

impl DashWriter {
    pub fn start(conf: &DashAppConf, name: &str, log: Log) -> io::Result<DashWriter> {
        let root = PathBuf::from(conf.path());
        let naming = Naming::new(name, conf.nested());
        fs::create_dir_all(root.join(naming.dir()))?;
        let fragment = conf.fragment_ms();
        // Segment numbers start from the wall clock (seconds): a later publish of the same name
        // never reuses an earlier one's file names, which players may still fetch.
        let first = wall_ms() / 1000;
        // Audio keeps exact 1024-sample durations unless the publisher's clock drifts from them by
        // more than a couple of frames (FFmpeg's looped files step by ~22 ms at the loop).
        let cmaf = CmafConf {
            segment_ms: fragment,
            max_segment_ms: fragment * 10,
            first_segment: first,
            audio_sync_ms: 50,
            ..CmafConf::default()
        };
        let utc = match (conf.clock(), conf.clock_uri.clone()) {
            (Clock::HttpIso, Some(uri)) => vec![UtcTiming::HttpIso(uri), UtcTiming::Direct],
            (Clock::HttpHead, Some(uri)) => vec![UtcTiming::HttpHead(uri), UtcTiming::Direct],
            _ => vec![UtcTiming::Direct],
        };
        let mut mpd_conf = MpdConfig::new(naming.clone(), UtcTiming::Direct);
        mpd_conf.utc_timing = utc;
        Ok(DashWriter {
            root,
            naming,
            packager: CmafPackager::new(cmaf),
            // Segments are announced 300 ms after they were complete: the MPD listing them is
            // written by then, so a client at the live edge never gets a 404.
            timeline: Timeline::new(TimelineConfig {
                availability_margin_ms: 300,
                ..TimelineConfig::new(conf.playlist_length_ms(), fragment)
            }),
            mpd: Mpd::new(mpd_conf),
            open: [None, None],
            asc: None,
            events: Vec::new(),
            log,
            broken: false,
            unsupported_logged: false,
        })
    }

    pub fn mpd_path(&self) -> PathBuf {
        self.root.join(self.naming.mpd_path())
    }

    pub fn video(&mut self, ts: u32, payload: &[u8]) {
        if self.broken {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        self.packager.push_video(ts, payload, &mut events);
        self.handle(&mut events);
        self.events = events;
    }

    pub fn audio(&mut self, ts: u32, payload: &[u8]) {
        if self.broken {
            return;
        }
        // AAC sequence header: its AudioSpecificConfig tells the MPD the channels and profile.
        if payload.len() > 2 && payload[0] >> 4 == 10 && payload[1] == 0 {
            self.asc = Some(payload[2..].to_vec());
        }
        let mut events = std::mem::take(&mut self.events);
        self.packager.push_audio(ts, payload, &mut events);
        self.handle(&mut events);
        self.events = events;
    }

    /// The stream ended: the open segments are completed and listed.
    pub fn finish(&mut self) {
        if self.broken {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        self.packager.flush(&mut events);
        self.handle(&mut events);
        // The last MPD says the presentation ended: players play out what is listed and stop
        // asking for more.
        if let Some(text) = self.mpd.render_ended(&self.timeline, wall_ms()) {
            if let Err(e) = write_atomic(&self.mpd_path(), text.as_bytes()) {
                log_error!(self.log, "dash: \"{}\": {}", self.naming.mpd_path(), e);
            }
        }
    }

    /// Every file this stream has now (for the deletion after it ended).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> =
            self.timeline.all_files().into_iter().map(|(t, n)| self.root.join(self.naming.segment_path(t, n))).collect();
        for t in Track::ALL {
            out.push(self.root.join(self.naming.init_path(t)));
        }
        out.push(self.mpd_path());
        out
    }

    fn handle(&mut self, events: &mut Vec<CmafEvent>) {
        for ev in events.drain(..) {
            if let Err(e) = self.event(ev) {
                log_error!(self.log, "dash: \"{}\": {}; DASH output stops for this stream", self.naming.mpd_path(), e);
                self.broken = true;
                for open in self.open.iter_mut() {
                    if let Some(o) = open.take() {
                        let _ = fs::remove_file(&o.tmp);
                    }
                }
                return;
            }
        }
    }

    fn event(&mut self, ev: CmafEvent) -> io::Result<()> {
        match ev {
            CmafEvent::Init { track, bytes, codec, timescale } => {
                let t = track_of(track);
                write_atomic(&self.root.join(self.naming.init_path(t)), &bytes)?;
                let info = match t {
                    Track::Video => {
                        let (w, h) = self.packager.dimensions().unwrap_or((0, 0));
                        TrackInfo::Video(VideoInfo {
                            timescale,
                            codecs: codec,
                            width: u32::from(w),
                            height: u32::from(h),
                            frame_rate: None,
                            sar: None,
                            bandwidth: None,
                        })
                    }
                    Track::Audio => {
                        let mut a = self.asc.as_deref().and_then(|asc| AudioInfo::from_aac_config(asc).ok()).unwrap_or(AudioInfo {
                            timescale,
                            codecs: codec.clone(),
                            sample_rate: timescale,
                            channels: 2,
                            bandwidth: None,
                        });
                        a.timescale = timescale;
                        a.codecs = codec;
                        TrackInfo::Audio(a)
                    }
                };
                self.timeline.set_track(info);
            }
            CmafEvent::Chunk(c) => {
                let t = track_of(c.track);
                let slot = &mut self.open[t.index()];
                if slot.as_ref().is_some_and(|o| o.number != c.segment) {
                    // A segment that never ended (cannot happen with the packager's events):
                    // drop its partial file rather than list it.
                    if let Some(o) = slot.take() {
                        let _ = fs::remove_file(&o.tmp);
                    }
                }
                if slot.is_none() {
                    let path = self.root.join(self.naming.segment_path(t, c.segment));
                    let tmp = with_suffix(&path, ".tmp");
                    let file = BufWriter::with_capacity(64 * 1024, File::create(&tmp)?);
                    *slot = Some(OpenSegment { number: c.segment, tmp, file, bytes: 0 });
                }
                if let Some(o) = slot.as_mut() {
                    o.file.write_all(&c.bytes)?;
                    o.bytes += c.bytes.len() as u64;
                }
            }
            CmafEvent::SegmentEnd(s) => {
                let t = track_of(s.track);
                let Some(mut o) = self.open[t.index()].take().filter(|o| o.number == s.number) else { return Ok(()) };
                o.file.flush()?;
                drop(o.file);
                fs::rename(&o.tmp, self.root.join(self.naming.segment_path(t, s.number)))?;
                let now = wall_ms();
                if let Err(e) = self.timeline.push_segment_sized(t, s.number, s.start, s.duration, Some(o.bytes), now) {
                    log_info!(self.log, "dash: \"{}\": segment {} not listed: {:?}", self.naming.mpd_path(), s.number, e);
                }
                if let Some(text) = self.mpd.render(&self.timeline, now) {
                    write_atomic(&self.mpd_path(), text.as_bytes())?;
                }
                for (t, n) in self.timeline.take_removable(now) {
                    let _ = fs::remove_file(self.root.join(self.naming.segment_path(t, n)));
                }
            }
            CmafEvent::Unsupported { track, reason } => {
                if !self.unsupported_logged {
                    self.unsupported_logged = true;
                    log_info!(self.log, "dash: \"{}\": {:?} track not written: {}", self.naming.mpd_path(), track, reason);
                }
            }
        }
        Ok(())
    }
}
