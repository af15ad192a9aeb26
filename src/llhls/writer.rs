//! One stream's Low-Latency HLS: parts, segments and init segments written to
//! `<hls_path>/<name>.ll/` (each file whole, through a rename), and the playlist state published
//! in shared memory at every part, for the HTTP side of any worker.
//!
//! Files: `init-<id>.mp4` and `<msn>.m4s`, a segment, to which each part is appended as it is made
//! (a part is a byte range of its segment's file: one file per segment, not per part — creating
//! and deleting five files a second per stream costs the file system more than the writes).
//! The state says a part exists only once its bytes are written, so readers never see less.
//! Media sequence numbers (and init ids) start at the publish time divided by `hls_fragment`, so
//! they grow across republishes and players never see an old number again. Segment files go a
//! playlist length after they leave the playlist.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rtmp_proto::hls::ll::{LlPart, LlState};

use crate::core::names::write_atomic;
use crate::hls::Cleanup;
use crate::log_info;
use crate::ngx::log::Log;
use crate::ngx::now_ms;

use super::mux::{LlMuxer, LlOut};
use super::zone::{self, Entry, Publication};

pub struct Settings {
    pub part_ms: u64,
    pub fragment_ms: u64,
    pub max_fragment_ms: u64,
    pub window_ms: u64,
}

pub struct LlWriter {
    mux: LlMuxer,
    out: Vec<LlOut>,
    entry: Entry,
    slot: Option<Publication>,
    /// The open segment's file, its parts appended, and whether a write to it failed.
    segment: Option<fs::File>,
    broken: bool,
    /// An init that goes with the next segment, and the id of the current one.
    next_init: Option<Vec<u8>>,
    init_id: Option<u64>,
    /// Files to delete, and when (ms).
    doomed: Vec<(u64, PathBuf)>,
    window_ms: u64,
    cleanup: &'static Cleanup,
    log: Log,
    full_said: bool,
    error_said: bool,
}

fn wall_ms() -> u64 {
    crate::ngx::shm::wall_ms()
}

/// The stream's file directory: `<hls_path>/<name>.ll`.
pub fn stream_dir(hls_path: &Path, name: &str) -> PathBuf {
    hls_path.join(format!("{name}.ll"))
}

impl LlWriter {
    pub fn start(
        app: &str,
        name: &str,
        dir: PathBuf,
        set: &Settings,
        siblings: Vec<String>,
        cleanup: &'static Cleanup,
        log: Log,
    ) -> Result<LlWriter, String> {
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create \"{}\": {e}", dir.display()))?;
        // A previous publish's files: its numbers are older, nobody can ask for them now.
        if let Ok(rd) = fs::read_dir(&dir) {
            for f in rd.flatten() {
                let n = f.file_name();
                let n = n.to_string_lossy();
                if n.ends_with(".m4s") || n.ends_with(".mp4") || n.ends_with(".tmp") {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
        // After the numbers of a previous publish of the name (in any worker), which players
        // and caches may still hold.
        let after = zone::find(app, name).map_or(0, |e| e.state.open.msn.saturating_add(1));
        let slot = zone::claim().ok_or("every Low-Latency HLS slot is in use (128 streams)")?;
        let first = (wall_ms() / set.fragment_ms.max(1)).max(after);
        let state = LlState::new(set.part_ms, set.fragment_ms, set.window_ms, first);
        Ok(LlWriter {
            mux: LlMuxer::new(set.fragment_ms, set.max_fragment_ms, set.part_ms),
            out: Vec::new(),
            entry: zone::entry(app, name, dir, wall_ms(), siblings, state),
            slot: Some(slot),
            segment: None,
            broken: false,
            next_init: None,
            init_id: None,
            doomed: Vec::new(),
            window_ms: set.window_ms,
            cleanup,
            log,
            full_said: false,
            error_said: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.entry.dir
    }

    pub fn video(&mut self, timestamp: u32, body: &[u8]) {
        let mut out = std::mem::take(&mut self.out);
        self.mux.video(timestamp, body, &mut out);
        self.handle(&mut out);
        self.out = out;
    }

    pub fn audio(&mut self, timestamp: u32, body: &[u8]) {
        let mut out = std::mem::take(&mut self.out);
        self.mux.audio(timestamp, body, &mut out);
        self.handle(&mut out);
        self.out = out;
    }

    /// The stream ended: the last parts and segment go out, the playlist ends (EXT-X-ENDLIST)
    /// and stays readable for a playlist length.
    pub fn finish(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        self.mux.finish(&mut out);
        self.handle(&mut out);
        self.end_segment();
        self.entry.state.finish();
        self.publish();
        let keep = self.window_ms.saturating_add(self.part_keep_ms());
        if let Some(slot) = self.slot.take() {
            slot.end(keep);
        }
        // Every file of this publish goes once the ended playlist is no longer served. Names are
        // never reused (numbers grow across publishes), so a republish meanwhile loses nothing.
        self.doomed.clear();
        if let Ok(rd) = fs::read_dir(&self.entry.dir) {
            for f in rd.flatten() {
                self.cleanup.schedule(f.path(), keep);
            }
        }
    }

    fn handle(&mut self, out: &mut Vec<LlOut>) {
        for o in out.drain(..) {
            match o {
                LlOut::Notice(why) => log_info!(self.log, "hls: \"{}\": {}", self.entry.name, why),
                LlOut::Init(bytes) => self.next_init = Some(bytes),
                LlOut::Part { bytes, duration_ms, independent } => {
                    self.part(bytes, duration_ms, independent);
                }
                LlOut::SegmentEnd => {
                    self.end_segment();
                    self.publish();
                }
            }
        }
    }

    fn part(&mut self, bytes: Vec<u8>, duration_ms: u64, independent: bool) {
        let open_msn = self.entry.state.open.msn;
        if self.entry.state.open.parts.is_empty() {
            if let Some(init) = self.next_init.take() {
                let path = self.entry.dir.join(format!("init-{open_msn}.mp4"));
                if let Err(e) = write_atomic(&path, &init) {
                    self.error(&path, &e);
                    return;
                }
                if let Some(old) = self.init_id {
                    // The segments that use the old init leave within a playlist length.
                    let at = now_ms().saturating_add(self.window_ms).saturating_add(self.part_keep_ms());
                    self.doomed.push((at, self.entry.dir.join(format!("init-{old}.mp4"))));
                }
                let open = &mut self.entry.state.open;
                open.discontinuity |= self.init_id.is_some();
                open.map = open_msn;
                self.init_id = Some(open_msn);
            }
            // A part goes out when the frame after it arrives: it began its duration ago.
            self.entry.state.open.date_ms = wall_ms().saturating_sub(duration_ms);
        }
        if self.init_id.is_none() {
            return;
        }
        if self.broken {
            return;
        }
        if self.segment.is_none() {
            let path = self.entry.dir.join(format!("{open_msn}.m4s"));
            match fs::File::create(&path) {
                Ok(f) => self.segment = Some(f),
                Err(e) => return self.error(&path, &e),
            }
        }
        let Some(f) = self.segment.as_mut() else { return };
        if let Err(e) = f.write_all(&bytes) {
            // The file may now be shorter than the parts it should hold: the rest of this
            // segment is dropped.
            let path = self.entry.dir.join(format!("{open_msn}.m4s"));
            self.error(&path, &e);
            self.broken = true;
            return;
        }
        self.entry.state.add_part(LlPart { duration_ms, independent, size: bytes.len() as u64 });
        self.publish();
    }

    /// The open segment is complete: its file is closed, segments that left the window go later.
    fn end_segment(&mut self) {
        self.segment = None;
        self.broken = false;
        if self.entry.state.open.parts.is_empty() {
            return;
        }
        let map = self.init_id.unwrap_or(0);
        let dropped = self.entry.state.end_segment(map, false, 0);
        let now = now_ms();
        // Players that read the previous playlist may still ask for them.
        let at = now.saturating_add(self.window_ms);
        for d in dropped {
            self.doomed.push((at, self.entry.dir.join(format!("{d}.m4s"))));
        }
        self.doomed.retain(|(at, p)| {
            if *at > now {
                return true;
            }
            let _ = fs::remove_file(p);
            false
        });
    }

    fn part_keep_ms(&self) -> u64 {
        self.entry.state.target_duration_s().saturating_mul(6000)
    }

    fn publish(&mut self) {
        let Some(slot) = &self.slot else { return };
        if !slot.write(&self.entry) && !self.full_said {
            self.full_said = true;
            log_info!(self.log, "hls: \"{}\": the Low-Latency HLS playlist is larger than its shared memory slot; it is no longer updated", self.entry.name);
        }
    }

    fn error(&mut self, path: &Path, e: &std::io::Error) {
        if !self.error_said {
            self.error_said = true;
            crate::log_error!(self.log, "hls: \"{}\": cannot write \"{}\": {}", self.entry.name, path.display(), e);
        }
    }
}

impl Drop for LlWriter {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.end(0);
        }
    }
}
