//! The RTMP side's hooks: a publish that live accepted in an application with `hls on` and
//! `hls_low_latency on` starts a writer; its audio and video feed it; closing the stream or the
//! connection ends its playlist.

use crate::core::hooks::{PublishReq, Step};
use crate::core::output::{self, StreamWriter};
use crate::core::session::Session;
use crate::hls::{HlsAppConf, HlsModule};
use crate::{log_error, log_info};

use super::conf::LlAppConf;
use super::writer::{stream_dir, LlWriter, Settings};
use super::LlModule;

fn confs(s: &Session) -> Option<(&'static HlsAppConf, &'static LlAppConf)> {
    let app = s.app_ctx?;
    let (hls, ll) = (app.app::<HlsModule>(), app.app::<LlModule>());
    (hls.hls() && ll.on()).then_some((hls, ll))
}

/// The other variants of `name` (`hls_variant` suffixes): their playlists get rendition reports.
fn siblings(hls: &HlsAppConf, name: &str) -> Vec<String> {
    let variants = hls.variants();
    let Some(mine) = variants.iter().find(|v| !v.suffix.is_empty() && name.ends_with(&v.suffix)) else {
        return Vec::new();
    };
    let base = &name[..name.len() - mine.suffix.len()];
    variants.iter().filter(|v| v.suffix != mine.suffix).map(|v| format!("{base}{}", v.suffix)).collect()
}

pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some((hls, ll)) = confs(s) else { return Step::Continue };
    output::end::<LlWriter>(s, None);
    let set = Settings {
        part_ms: ll.part_ms(),
        fragment_ms: hls.fragment_ms(),
        max_fragment_ms: hls.max_fragment_ms(),
        window_ms: hls.playlist_length_ms(),
    };
    let app = s.app().map(|a| a.name.clone()).unwrap_or_default();
    let dir = stream_dir(&hls.path(), &req.name);
    let cleanup = &s.srv_ctx.main::<LlModule>().cleanup;
    match LlWriter::start(&app, &req.name, dir, &set, siblings(hls, &req.name), cleanup, s.log) {
        Ok(writer) => {
            log_info!(s.log, "hls: \"{}\": low-latency parts of {} ms in \"{}\"", req.name, set.part_ms, writer.dir().display());
            output::keep(s, req.stream_id, writer);
        }
        Err(e) => log_error!(s.log, "hls: \"{}\": {}; no Low-Latency HLS for this stream", req.name, e),
    }
    Step::Continue
}

impl StreamWriter for LlWriter {
    fn audio(&mut self, timestamp: u32, body: &[u8]) {
        LlWriter::audio(self, timestamp, body)
    }
    fn video(&mut self, timestamp: u32, body: &[u8]) {
        LlWriter::video(self, timestamp, body)
    }
    fn finish(mut self, _s: &mut Session) {
        LlWriter::finish(&mut self);
    }
}
