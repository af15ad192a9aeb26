//! The HLS module's hooks: a publish that live accepted starts a writer for the stream, its audio
//! and video feed it, closing the stream or the connection finishes it.

use std::cell::Cell;
use std::rc::Rc;

use crate::core::hooks::{PublishReq, Step};
use crate::core::output::{self, StreamWriter};
use crate::core::session::Session;
use crate::{log_error, log_info};

use super::conf::HlsAppConf;
use super::writer::HlsWriter;
use super::HlsModule;

impl StreamWriter for HlsWriter {
    fn audio(&mut self, timestamp: u32, body: &[u8]) {
        HlsWriter::audio(self, timestamp, body)
    }
    fn video(&mut self, timestamp: u32, body: &[u8]) {
        HlsWriter::video(self, timestamp, body)
    }
    fn finish(mut self, s: &mut Session) {
        HlsWriter::finish(&mut self);
        let main = s.srv_ctx.main::<HlsModule>();
        let mut owners = main.owners.borrow_mut();
        if owners.get(&self.layout.playlist).is_some_and(|o| Rc::ptr_eq(o, &self.owner)) {
            owners.remove(&self.layout.playlist);
        }
    }
}

fn app_conf(s: &Session) -> Option<&'static HlsAppConf> {
    s.app_ctx.map(|a| a.app::<HlsModule>()).filter(|c| c.hls())
}

/// Before live: a name that cannot be a file name is refused before anything is written.
pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    if app_conf(s).is_none() {
        return Step::Continue;
    }
    output::refuse_file_name(s, req, "hls")
}

/// After live accepted the publish.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = app_conf(s) else { return Step::Continue };
    output::end::<HlsWriter>(s, None);
    let main = s.srv_ctx.main::<HlsModule>();
    let owner = Rc::new(Cell::new(true));
    match HlsWriter::start(conf, main, &req.name, s.log, owner.clone()) {
        Ok(writer) => {
            // A takeover: the older writer of these files stops writing.
            if let Some(old) = main.owners.borrow_mut().insert(writer.layout.playlist.clone(), owner) {
                old.set(false);
            }
            log_info!(s.log, "hls: \"{}\" writes \"{}\"", req.name, writer.layout.playlist.display());
            output::keep(s, req.stream_id, writer);
        }
        Err(e) => log_error!(s.log, "hls: \"{}\": {}; no HLS for this stream", req.name, e),
    }
    Step::Continue
}
