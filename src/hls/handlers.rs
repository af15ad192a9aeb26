//! The HLS module's hooks: a publish that live accepted starts a writer for the stream, its audio
//! and video feed it, closing the stream or the connection finishes it.

use std::cell::Cell;
use std::rc::Rc;

use rtmp_proto::message::msg_type;
use rtmp_proto::RawMessage;

use crate::core::hooks::{PublishReq, Step};
use crate::core::session::Session;
use crate::{log_error, log_info};

use super::conf::HlsAppConf;
use super::names::refuse_name;
use super::writer::HlsWriter;
use super::HlsModule;

/// The session's HLS writer (a connection publishes one stream at a time in practice; a second
/// publish on another stream id replaces the first).
struct HlsCtx {
    stream_id: u32,
    writer: HlsWriter,
}

fn app_conf(s: &Session) -> Option<&'static HlsAppConf> {
    s.app_ctx.map(|a| a.app::<HlsModule>()).filter(|c| c.hls())
}

/// Before live: a name that cannot be a file name is refused before anything is written.
pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    if app_conf(s).is_none() {
        return Step::Continue;
    }
    match refuse_name(&req.name) {
        None => Step::Continue,
        Some(why) => {
            s.send_status(req.stream_id, "error", "NetStream.Publish.BadName", "Invalid stream name");
            Step::Close(format!("hls: publish refused: stream name {why}"))
        }
    }
}

/// After live accepted the publish.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = app_conf(s) else { return Step::Continue };
    finish(s, None);
    let main = s.srv_ctx.main::<HlsModule>();
    let owner = Rc::new(Cell::new(true));
    match HlsWriter::start(conf, main, &req.name, s.log, owner.clone()) {
        Ok(writer) => {
            // A takeover: the older writer of these files stops writing.
            if let Some(old) = main.owners.borrow_mut().insert(writer.layout.playlist.clone(), owner) {
                old.set(false);
            }
            log_info!(s.log, "hls: \"{}\" writes \"{}\"", req.name, writer.layout.playlist.display());
            s.ext.insert(HlsCtx { stream_id: req.stream_id, writer });
        }
        Err(e) => log_error!(s.log, "hls: \"{}\": {}; no HLS for this stream", req.name, e),
    }
    Step::Continue
}

pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    let Some(ctx) = s.ext.get_mut::<HlsCtx>() else { return Step::Continue };
    match msg.msg_type {
        msg_type::AUDIO => ctx.writer.audio(msg.timestamp, &msg.payload),
        msg_type::VIDEO => ctx.writer.video(msg.timestamp, &msg.payload),
        _ => {}
    }
    Step::Continue
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    finish(s, Some(stream_id));
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    finish(s, None);
}

/// Finishes the writer (of `stream_id`, or whichever there is).
fn finish(s: &mut Session, stream_id: Option<u32>) {
    if s.ext.get::<HlsCtx>().is_none_or(|c| stream_id.is_some_and(|id| id != c.stream_id)) {
        return;
    }
    let Some(mut ctx) = s.ext.remove::<HlsCtx>() else { return };
    ctx.writer.finish();
    let main = s.srv_ctx.main::<HlsModule>();
    let mut owners = main.owners.borrow_mut();
    if owners.get(&ctx.writer.layout.playlist).is_some_and(|o| Rc::ptr_eq(o, &ctx.writer.owner)) {
        owners.remove(&ctx.writer.layout.playlist);
    }
}
