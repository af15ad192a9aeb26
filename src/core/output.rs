//! What the features that write a published stream to files (HLS, DASH, Low-Latency HLS) share in
//! their hooks: a name check before live accepts the publish, and a writer per session, fed the
//! stream's audio and video, taken out when the stream or the connection closes.

use rtmp_proto::message::msg_type;
use rtmp_proto::RawMessage;

use super::hooks::{PublishReq, Step};
use super::names::file_name_refusal;
use super::session::Session;

/// A feature's per-stream writer.
pub trait StreamWriter: Sized + 'static {
    fn audio(&mut self, timestamp: u32, body: &[u8]);
    fn video(&mut self, timestamp: u32, body: &[u8]);
    /// The stream ended (or another publish on the session replaces it).
    fn finish(self, s: &mut Session);
}

/// The session's writer of one feature, for the stream it publishes (a connection publishes one
/// stream at a time in practice; a second publish on another stream id replaces the first).
struct Writing<W> {
    stream_id: u32,
    writer: W,
}

/// Before live: a name that cannot be a file name is refused (`feature` starts the log line).
pub fn refuse_file_name(s: &mut Session, req: &PublishReq, feature: &str) -> Step {
    match file_name_refusal(&req.name) {
        None => Step::Continue,
        Some(why) => {
            s.send_status(req.stream_id, "error", "NetStream.Publish.BadName", "Invalid stream name");
            Step::Close(format!("{feature}: publish refused: stream name {why}"))
        }
    }
}

/// Keeps `writer` for the stream `stream_id` of the session.
pub fn keep<W: StreamWriter>(s: &mut Session, stream_id: u32, writer: W) {
    s.ext.insert(Writing { stream_id, writer });
}

/// The `media` hook: audio and video go to the session's writer `W`, if it has one.
pub fn feed<W: StreamWriter>(s: &mut Session, msg: &RawMessage) -> Step {
    let Some(w) = s.ext.get_mut::<Writing<W>>() else { return Step::Continue };
    match msg.msg_type {
        msg_type::AUDIO => w.writer.audio(msg.timestamp, &msg.payload),
        msg_type::VIDEO => w.writer.video(msg.timestamp, &msg.payload),
        _ => {}
    }
    Step::Continue
}

/// Finishes the session's writer `W` if it writes `stream_id` (any stream when None).
pub fn end<W: StreamWriter>(s: &mut Session, stream_id: Option<u32>) {
    if s.ext.get::<Writing<W>>().is_none_or(|w| stream_id.is_some_and(|id| id != w.stream_id)) {
        return;
    }
    if let Some(w) = s.ext.remove::<Writing<W>>() {
        w.writer.finish(s);
    }
}

/// The `close_stream` hook: the stream's writer `W` finishes.
pub fn close_stream<W: StreamWriter>(s: &mut Session, stream_id: u32) -> Step {
    end::<W>(s, Some(stream_id));
    Step::Continue
}

/// The `disconnect` hook: the session's writer `W` finishes.
pub fn disconnect<W: StreamWriter>(s: &mut Session) {
    end::<W>(s, None);
}
