//! One publishing stream's HLS output: feeds the segmenter, writes each segment under a temporary
//! name and renames it when complete, then lists it in a playlist that is itself replaced
//! atomically; keys, variants' master playlist and deferred cleanup. With `hls_fragment_type
//! fmp4` the CMAF packager makes the segments instead (see `fmp4.rs`), written whole.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use rtmp_proto::hls::clock::iso8601_ms;
use rtmp_proto::hls::crypt::{new_key, SegmentCipher};
use rtmp_proto::hls::{playlist, Playlist, SegmentEntry};
use rtmp_proto::mpegts::{MediaInfo, SegEvent, Segmenter};

use crate::ngx::log::Log;
use crate::{log_error, log_info};

use super::conf::{HlsAppConf, HlsMainConf, Naming};
use super::fmp4;
use super::names::Layout;

struct OpenSegment {
    id: u64,
    tmp: PathBuf,
    path: PathBuf,
    /// Written in 64 KiB pieces: a few syscalls per segment, not one per frame.
    file: BufWriter<File>,
    cipher: Option<SegmentCipher>,
    key_id: Option<u64>,
    discontinuity: bool,
    date: String,
    bytes: u64,
}

pub struct HlsWriter {
    pub layout: Layout,
    conf: &'static HlsAppConf,
    main: &'static HlsMainConf,
    seg: Segmenter,
    playlist: Playlist,
    open: Option<OpenSegment>,
    /// The first segment after a continued playlist follows a gap.
    gap: bool,
    last_id: Option<u64>,
    key: Option<(u64, [u8; 16])>,
    segments_on_key: u64,
    events: Vec<SegEvent>,
    scratch: Vec<u8>,
    log: Log,
    /// Cleared when another publisher took this stream's files over.
    pub owner: Rc<Cell<bool>>,
    /// An IO error stopped this stream's HLS output (RTMP goes on).
    broken: bool,
    /// `(base name, suffix)` when the stream is a variant of a master playlist.
    variant: Option<String>,
    info: (MediaInfo, u64),
    /// `hls_fragment_type fmp4`: the packager and muxer used instead of `seg`.
    fmp4: Option<Box<fmp4::Muxer>>,
    fmp4_out: Vec<fmp4::Output>,
    /// fMP4: the id of the current init file, and the init id of every listed segment.
    init_id: Option<u64>,
    inits: HashMap<u64, u64>,
}

const WRITE_BUFFER: usize = 64 * 1024;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

use crate::core::names::{tmp_name, write_atomic};

impl HlsWriter {
    pub fn start(
        conf: &'static HlsAppConf,
        main: &'static HlsMainConf,
        name: &str,
        log: Log,
        owner: Rc<Cell<bool>>,
    ) -> Result<HlsWriter, String> {
        let layout = Layout::new(conf, name);
        fs::create_dir_all(&layout.dir).map_err(|e| format!("cannot create \"{}\": {e}", layout.dir.display()))?;
        if conf.keys() {
            let kd = layout.key_dir();
            fs::create_dir_all(kd).map_err(|e| format!("cannot create \"{}\": {e}", kd.display()))?;
        }
        let mut playlist = Playlist::new(conf.playlist_length_ms(), conf.fragment_ms(), conf.event());
        let mut gap = false;
        let mut inits = HashMap::new();
        main.cleanup.cancel(&layout.playlist);
        if conf.continuous() {
            if let Ok(text) = fs::read_to_string(&layout.playlist) {
                let parsed = if conf.fmp4() {
                    fmp4::parse(&text).map(|(old, maps)| {
                        for (s, i) in old.segments.iter().zip(maps) {
                            main.cleanup.cancel(&layout.init_path(i));
                            inits.insert(s.id, i);
                        }
                        old
                    })
                } else {
                    playlist::parse(&text)
                };
                match parsed {
                    Some(old) => {
                        // Segments still listed must not be deleted under the new playlist.
                        for s in &old.segments {
                            main.cleanup.cancel(&layout.segment_path(s.id));
                        }
                        if let Some(k) = old.segments.last().and_then(|s| s.key_id) {
                            main.cleanup.cancel(&layout.key_path(k));
                        }
                        gap = !old.segments.is_empty();
                        playlist.restore(old);
                    }
                    None => {
                        log_info!(log, "hls: \"{}\" is not a playlist, starting a new one", layout.playlist.display())
                    }
                }
            }
        }
        let variant = conf
            .variants()
            .iter()
            .find(|v| name.len() > v.suffix.len() && name.ends_with(&v.suffix))
            .map(|v| name[..name.len() - v.suffix.len()].to_string());
        let mut w = HlsWriter {
            last_id: playlist.last_id(),
            layout,
            conf,
            main,
            seg: Segmenter::new(conf.segmenter()),
            playlist,
            open: None,
            gap,
            key: None,
            segments_on_key: 0,
            events: Vec::new(),
            scratch: Vec::new(),
            log,
            owner,
            broken: false,
            variant,
            info: (MediaInfo::default(), 0),
            fmp4: conf.fmp4().then(|| Box::new(fmp4::Muxer::new(conf.fragment_ms(), conf.max_fragment_ms()))),
            fmp4_out: Vec::new(),
            init_id: None,
            inits,
        };
        if w.variant.is_some() {
            w.write_master();
        }
        Ok(w)
    }

    pub fn audio(&mut self, timestamp: u32, body: &[u8]) {
        if let (true, Some(m)) = (self.active(), self.fmp4.as_mut()) {
            let mut out = std::mem::take(&mut self.fmp4_out);
            m.audio(timestamp, body, &mut out);
            self.handle_fmp4(&mut out);
            self.fmp4_out = out;
        } else if self.active() {
            let mut ev = std::mem::take(&mut self.events);
            self.seg.push_audio(timestamp, body, &mut ev);
            self.handle(&mut ev);
            self.events = ev;
        }
    }

    pub fn video(&mut self, timestamp: u32, body: &[u8]) {
        if let (true, Some(m)) = (self.active(), self.fmp4.as_mut()) {
            let mut out = std::mem::take(&mut self.fmp4_out);
            m.video(timestamp, body, &mut out);
            self.handle_fmp4(&mut out);
            self.fmp4_out = out;
        } else if self.active() {
            let mut ev = std::mem::take(&mut self.events);
            self.seg.push_video(timestamp, body, &mut ev);
            self.handle(&mut ev);
            self.events = ev;
        }
    }

    fn active(&self) -> bool {
        !self.broken && self.owner.get()
    }

    /// The publisher left: the last segment is closed and listed; an event playlist ends.
    pub fn finish(&mut self) {
        if !self.active() {
            self.discard_open();
            return;
        }
        if let Some(m) = self.fmp4.as_mut() {
            let mut out = Vec::new();
            m.finish(&mut out);
            self.handle_fmp4(&mut out);
        } else {
            let mut ev = Vec::new();
            self.seg.finish(&mut ev);
            self.handle(&mut ev);
        }
        self.discard_open();
        if self.broken {
            return;
        }
        if self.conf.event() {
            self.playlist.ended = true;
            self.write_playlist();
        } else if self.conf.cleanup() {
            // Gone live streams are cleaned up once a player reading the last playlist is done.
            let listed: u64 = self.playlist.segments.iter().map(|s| s.duration_ms).sum();
            let grace = listed + self.playlist.target_duration() * 1000;
            for s in &self.playlist.segments {
                self.main.cleanup.schedule(self.layout.segment_path(s.id), grace);
            }
            let mut keys: Vec<u64> = self.playlist.segments.iter().filter_map(|s| s.key_id).collect();
            keys.dedup();
            for k in keys {
                self.main.cleanup.schedule(self.layout.key_path(k), grace);
            }
            let mut inits: Vec<u64> = self.playlist.segments.iter().filter_map(|s| self.inits.get(&s.id).copied()).collect();
            inits.dedup();
            for i in inits {
                self.main.cleanup.schedule(self.layout.init_path(i), grace);
            }
            self.main.cleanup.schedule(self.layout.playlist.clone(), grace);
        }
    }

    fn discard_open(&mut self) {
        if let Some(o) = self.open.take() {
            let _ = fs::remove_file(&o.tmp);
        }
    }

    fn handle(&mut self, ev: &mut Vec<SegEvent>) {
        for e in ev.drain(..) {
            if self.broken {
                break;
            }
            let r = match e {
                SegEvent::Open { start_ms, discontinuity } => self.open_segment(start_ms, discontinuity),
                SegEvent::Data(d) => self.write_data(&d),
                SegEvent::Close { duration_ms } => self.close_segment(duration_ms),
                SegEvent::Unsupported(why) => {
                    log_info!(self.log, "hls: \"{}\": {}", self.layout.name, why);
                    Ok(())
                }
            };
            if let Err(e) = r {
                log_error!(self.log, "hls: \"{}\": {}; HLS stops for this stream", self.layout.name, e);
                self.broken = true;
                self.discard_open();
            }
        }
    }

    fn next_id(&self, start_ms: u64) -> u64 {
        let raw = match self.conf.naming() {
            Naming::Sequential => self.playlist.next_sequence(),
            Naming::Timestamp => start_ms,
            Naming::System => unix_ms(),
        };
        let g = self.conf.granularity();
        let id = if g > 0 && self.conf.naming() != Naming::Sequential { raw / g * g } else { raw };
        // An id names one file for good: never reuse one within a playlist.
        match self.last_id {
            Some(last) if id <= last => last.saturating_add(1),
            _ => id,
        }
    }

    fn open_segment(&mut self, start_ms: u64, discontinuity: bool) -> Result<(), String> {
        self.discard_open();
        let id = self.next_id(start_ms);
        let seq = self.playlist.next_sequence();
        let (cipher, key_id) = self.segment_key(id, seq)?;
        let path = self.layout.segment_path(id);
        let tmp = tmp_name(&path);
        let file = File::create(&tmp).map_err(|e| format!("cannot create \"{}\": {e}", tmp.display()))?;
        let file = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.main.cleanup.cancel(&path);
        self.open = Some(OpenSegment {
            id,
            tmp,
            path,
            file,
            cipher,
            key_id,
            discontinuity: discontinuity || std::mem::take(&mut self.gap),
            date: iso8601_ms(unix_ms()),
            bytes: 0,
        });
        self.last_id = Some(id);
        Ok(())
    }

    /// With `hls_keys`: the cipher of segment `id` (media sequence `seq`) and its key's id; a new
    /// key file every `hls_fragments_per_key` segments.
    #[allow(clippy::type_complexity)]
    fn segment_key(&mut self, id: u64, seq: u64) -> Result<(Option<SegmentCipher>, Option<u64>), String> {
        let (mut cipher, mut key_id) = (None, None);
        if self.conf.keys() {
            let fpk = self.conf.fragments_per_key();
            let key = match self.key {
                Some(k) if fpk == 0 || self.segments_on_key < fpk => k,
                _ => {
                    let k = (id, new_key());
                    let path = self.layout.key_path(id);
                    write_atomic(&path, &k.1).map_err(|e| format!("cannot write key \"{}\": {e}", path.display()))?;
                    self.key = Some(k);
                    self.segments_on_key = 0;
                    k
                }
            };
            self.segments_on_key += 1;
            cipher = Some(SegmentCipher::new(&key.1, seq));
            key_id = Some(key.0);
        }
        Ok((cipher, key_id))
    }

    fn handle_fmp4(&mut self, out: &mut Vec<fmp4::Output>) {
        for o in out.drain(..) {
            if self.broken {
                break;
            }
            match o {
                fmp4::Output::Notice(why) => log_info!(self.log, "hls: \"{}\": {}", self.layout.name, why),
                fmp4::Output::Segment(s) => {
                    if let Err(e) = self.put_fmp4_segment(s) {
                        log_error!(self.log, "hls: \"{}\": {}; HLS stops for this stream", self.layout.name, e);
                        self.broken = true;
                    }
                }
            }
        }
    }

    /// A complete fMP4 segment: its init file first when it needs a new one (named after the
    /// segment, so segments listed before keep theirs; a new init within a publish follows a
    /// discontinuity), then the segment (AES-128 as a whole with `hls_keys`), then the playlist.
    fn put_fmp4_segment(&mut self, s: fmp4::MuxedSegment) -> Result<(), String> {
        let date = iso8601_ms(unix_ms());
        let id = self.next_id(s.start_ms);
        let seq = self.playlist.next_sequence();
        let mut discontinuity = std::mem::take(&mut self.gap);
        if s.new_init || self.init_id.is_none() {
            let path = self.layout.init_path(id);
            self.main.cleanup.cancel(&path);
            write_atomic(&path, &s.init).map_err(|e| format!("cannot write \"{}\": {e}", path.display()))?;
            discontinuity |= self.init_id.is_some();
            self.init_id = Some(id);
        }
        let (cipher, key_id) = self.segment_key(id, seq)?;
        let data = match cipher {
            Some(mut c) => {
                let mut enc = Vec::with_capacity(s.bytes.len() + 16);
                c.update(&s.bytes, &mut enc);
                c.finish(&mut enc);
                enc
            }
            None => s.bytes,
        };
        let path = self.layout.segment_path(id);
        self.main.cleanup.cancel(&path);
        write_atomic(&path, &data).map_err(|e| format!("cannot write \"{}\": {e}", path.display()))?;
        self.last_id = Some(id);
        if let Some(i) = self.init_id {
            self.inits.insert(id, i);
        }
        let entry = SegmentEntry { id, duration_ms: s.duration_ms, discontinuity, key_id, date: Some(date) };
        self.list_segment(entry, data.len() as u64);
        Ok(())
    }

    fn write_data(&mut self, data: &[u8]) -> Result<(), String> {
        let Some(o) = self.open.as_mut() else { return Ok(()) };
        o.bytes += data.len() as u64;
        let r = match o.cipher.as_mut() {
            Some(c) => {
                self.scratch.clear();
                c.update(data, &mut self.scratch);
                o.file.write_all(&self.scratch)
            }
            None => o.file.write_all(data),
        };
        r.map_err(|e| format!("cannot write \"{}\": {e}", o.tmp.display()))
    }

    fn close_segment(&mut self, duration_ms: u64) -> Result<(), String> {
        let Some(mut o) = self.open.take() else { return Ok(()) };
        if let Some(c) = o.cipher.take() {
            self.scratch.clear();
            c.finish(&mut self.scratch);
            o.file.write_all(&self.scratch).map_err(|e| format!("cannot write \"{}\": {e}", o.tmp.display()))?;
        }
        o.file.flush().map_err(|e| format!("cannot write \"{}\": {e}", o.tmp.display()))?;
        drop(o.file);
        fs::rename(&o.tmp, &o.path).map_err(|e| format!("cannot rename \"{}\": {e}", o.tmp.display()))?;
        let entry =
            SegmentEntry { id: o.id, duration_ms, discontinuity: o.discontinuity, key_id: o.key_id, date: Some(o.date) };
        self.list_segment(entry, o.bytes);
        Ok(())
    }

    /// Lists a segment written under its final name; schedules what left the playlist for deletion.
    fn list_segment(&mut self, entry: SegmentEntry, bytes: u64) {
        let duration_ms = entry.duration_ms;
        let bps = (bytes * 8000).checked_div(duration_ms).unwrap_or(0);
        let gone = self.playlist.push(entry);
        if self.conf.cleanup() {
            // Gone from the playlist: still served for its own length plus the playlist's.
            let listed: u64 = self.playlist.segments.iter().map(|s| s.duration_ms).sum();
            let current_key = self.key.map(|k| k.0);
            for g in gone {
                self.main.cleanup.schedule(self.layout.segment_path(g.id), g.duration_ms + listed);
                if let Some(k) = g.key_id {
                    let used = current_key == Some(k) || self.playlist.segments.iter().any(|s| s.key_id == Some(k));
                    if !used {
                        self.main.cleanup.schedule(self.layout.key_path(k), g.duration_ms + listed);
                    }
                }
                if let Some(i) = self.inits.remove(&g.id) {
                    let used = self.init_id == Some(i) || self.inits.values().any(|&v| v == i);
                    if !used {
                        self.main.cleanup.schedule(self.layout.init_path(i), g.duration_ms + listed);
                    }
                }
            }
        } else {
            for g in &gone {
                self.inits.remove(&g.id);
            }
        }
        self.write_playlist();
        if self.variant.is_some() {
            let info = match &self.fmp4 {
                Some(m) => m.media_info(),
                None => self.seg.media_info(),
            };
            let peak = self.info.1.max(bps);
            if info != self.info.0 || peak > self.info.1 * 11 / 10 {
                self.info = (info, peak);
                self.main.variant_info.borrow_mut().insert(self.layout.playlist.clone(), self.info.clone());
                self.write_master();
            }
        }
    }

    fn write_playlist(&mut self) {
        let l = &self.layout;
        let text = if self.fmp4.is_some() {
            let inits = &self.inits;
            let map = |s: &SegmentEntry| inits.get(&s.id).map(|&i| l.init_uri(i));
            self.playlist.render_with_maps(&|s| l.segment_uri(s.id), &|k| l.key_uri(k), Some(&map))
        } else {
            self.playlist.render(&|s| l.segment_uri(s.id), &|k| l.key_uri(k))
        };
        if let Err(e) = write_atomic(&self.layout.playlist, text.as_bytes()) {
            log_error!(self.log, "hls: cannot write \"{}\": {}", self.layout.playlist.display(), e);
            self.broken = true;
        }
    }

    /// `<base>.m3u8` listing every `hls_variant`, with what is known of each variant's media.
    fn write_master(&mut self) {
        let Some(base) = &self.variant else { return };
        let mut o = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        let known = self.main.variant_info.borrow();
        for v in self.conf.variants() {
            let stream = format!("{base}{}", v.suffix);
            let info = known.get(&Layout::new(self.conf, &stream).playlist);
            let mut attrs: Vec<String> =
                v.params.iter().filter(|p| !p.to_ascii_uppercase().starts_with("PROGRAM-ID=")).cloned().collect();
            let has = |attrs: &[String], k: &str| attrs.iter().any(|p| p.to_ascii_uppercase().starts_with(k));
            if !has(&attrs, "BANDWIDTH=") {
                match info.map(|i| i.1).filter(|&b| b > 0) {
                    Some(b) => attrs.insert(0, format!("BANDWIDTH={b}")),
                    // BANDWIDTH is required: the variant is listed once it was measured.
                    None => continue,
                }
            }
            if let Some((m, _)) = info {
                if !has(&attrs, "RESOLUTION=") && m.width > 0 && m.height > 0 {
                    attrs.push(format!("RESOLUTION={}x{}", m.width, m.height));
                }
                let codecs: Vec<&str> =
                    [&m.video_codec, &m.audio_codec].into_iter().flatten().map(String::as_str).collect();
                if !has(&attrs, "CODECS=") && !codecs.is_empty() {
                    attrs.push(format!("CODECS=\"{}\"", codecs.join(",")));
                }
                if !has(&attrs, "FRAME-RATE=") && m.frame_rate_milli > 0 {
                    attrs.push(format!("FRAME-RATE={}.{:03}", m.frame_rate_milli / 1000, m.frame_rate_milli % 1000));
                }
            }
            o.push_str(&format!(
                "#EXT-X-STREAM-INF:{}\n{}\n",
                attrs.join(","),
                Layout::variant_uri(self.conf, &stream)
            ));
        }
        drop(known);
        let path = Layout::master(self.conf, base);
        if let Err(e) = write_atomic(&path, o.as_bytes()) {
            log_error!(self.log, "hls: cannot write \"{}\": {}", path.display(), e);
        }
    }
}
