//! The record module's hooks: a publish that was accepted starts its application's recorders;
//! media feeds them; the end of the publish closes their files. The sans-IO `FlvRecorder` decides
//! what to write; this file opens, writes, patches and closes files, and reports each closed file
//! to the `record_done` hooks (notify, exec).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use rtmp_proto::flv::{audio_tag_info, video_tag_info};
use rtmp_proto::message::msg_type;
use rtmp_proto::record::{tail_timestamp, Action, FlvRecorder, RecordConfig};
use rtmp_proto::RawMessage;

use crate::core::hooks::{PublishReq, RecordDone, Step};
use crate::core::session::Session;
use crate::ngx::files::{strftime, unix_time};
use crate::ngx::module::CtxRef;
use crate::ngx::now_ms;
use crate::{log_error, log_info};

use super::conf::{recorders, RecordAppConf, KEYFRAMES, MANUAL};
use super::RecordModule;

/// Keyframe index entries reserved in each file's onMetaData.
const INDEX_CAPACITY: usize = 1000;

/// One recorder of a publishing session.
pub struct Rec {
    pub name: String,
    ctx: CtxRef,
    conf: &'static RecordAppConf,
    fr: FlvRecorder,
    file: Option<File>,
    pub path: Option<String>,
    /// Bytes of the current file known to be written.
    offset: u64,
    /// Tags not written yet: they go out together (one write per keyframe or 64 KiB), not one
    /// write per tag as in the C module.
    pending: Vec<u8>,
    opened_ms: u64,
    /// Files this recorder made in this publish (a rotation never reuses one of them).
    made: Vec<String>,
}

/// What this session records.
#[derive(Default)]
pub struct RecordCtx {
    pub stream_id: u32,
    pub stream: String,
    pub args: String,
    pub recs: Vec<Rec>,
}

fn flags_config(conf: &RecordAppConf) -> RecordConfig {
    let f = conf.flags();
    RecordConfig {
        audio: f & super::conf::AUDIO != 0,
        video: f & super::conf::VIDEO != 0,
        keyframes: f & KEYFRAMES != 0,
        max_size: conf.max_size(),
        max_frames: conf.max_frames(),
        index_capacity: INDEX_CAPACITY,
    }
}

pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(app) = s.app_ctx else {
        return Step::Continue;
    };
    let recs: Vec<Rec> = recorders(app)
        .into_iter()
        .map(|(name, ctx)| {
            let conf = ctx.app::<RecordModule>();
            let mut fr = FlvRecorder::new(flags_config(conf));
            if conf.flags() & MANUAL == 0 {
                fr.start();
            } else {
                fr.stop();
            }
            Rec {
                name,
                ctx,
                conf,
                fr,
                file: None,
                path: None,
                offset: 0,
                pending: Vec::new(),
                opened_ms: 0,
                made: Vec::new(),
            }
        })
        .collect();
    if recs.is_empty() {
        return Step::Continue;
    }
    s.ext.insert(RecordCtx {
        stream_id: req.stream_id,
        stream: req.name.clone(),
        args: req.args.clone(),
        recs,
    });
    Step::Continue
}

pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    let Some(mut ctx) = s.ext.remove::<RecordCtx>() else {
        return Step::Continue;
    };
    let mut done = Vec::new();
    let keyframe = msg.msg_type == msg_type::VIDEO && video_tag_info(&msg.payload).is_some_and(|i| i.keyframe);
    for r in &mut ctx.recs {
        let actions = feed(r, msg);
        apply(s, r, &ctx.stream, actions, &mut done);
        if keyframe || r.pending.len() >= FLUSH_AT {
            flush(s, r, &mut done);
        }
    }
    put_back(s, ctx, done);
    Step::Continue
}

/// Hands one message to a recorder; returns what it wants done.
fn feed(r: &mut Rec, msg: &RawMessage) -> Vec<Action> {
    match msg.msg_type {
        msg_type::VIDEO => {
            if video_tag_info(&msg.payload).is_some_and(|i| i.sequence_header) {
                r.fr.set_video_header(msg.payload.clone());
                return Vec::new();
            }
        }
        msg_type::AUDIO => {
            if audio_tag_info(&msg.payload).is_some_and(|i| i.sequence_header) {
                r.fr.set_audio_header(msg.payload.clone());
                return Vec::new();
            }
        }
        msg_type::AMF0_DATA => {
            let stripped = rtmp_proto::command::strip_set_data_frame(&msg.payload);
            if let Some(meta) = stripped {
                r.fr.set_meta(meta);
            }
            return Vec::new();
        }
        _ => return Vec::new(),
    }
    // `record_interval`: a new file at the next break frame once the interval is over.
    if let Some(iv) = r.conf.interval_ms() {
        if r.fr.is_open() && now_ms().saturating_sub(r.opened_ms) >= iv {
            r.opened_ms = now_ms();
            r.fr.rotate();
        }
    }
    r.fr.push(msg.msg_type, msg.timestamp, &msg.payload)
}

/// Carries out a recorder's actions; files it closed go to `done`.
fn apply(
    s: &mut Session,
    r: &mut Rec,
    stream: &str,
    actions: Vec<Action>,
    done: &mut Vec<(String, String, CtxRef)>,
) {
    for a in actions {
        match a {
            Action::Open => {
                if let Err(e) = open(r, stream) {
                    log_error!(s.log, "rtmp: record: {}", e);
                    status(s, r, "error", "NetStream.Record.Failed");
                    r.fr.failed();
                    return;
                }
                log_info!(
                    s.log,
                    "rtmp: record: recorder \"{}\" opened \"{}\"",
                    r.name,
                    r.path.as_deref().unwrap_or("")
                );
                status(s, r, "status", "NetStream.Record.Start");
            }
            Action::Write(b) => {
                if r.file.is_some() {
                    r.pending.extend_from_slice(&b);
                }
            }
            Action::Patch { offset, bytes } => {
                if !flush(s, r, done) {
                    return;
                }
                if let Some(f) = r.file.as_ref() {
                    // The file stays playable without the patch (only its index is missing).
                    if let Err(e) = f.write_all_at(&bytes, offset) {
                        log_error!(
                            s.log,
                            "rtmp: record: \"{}\": patching metadata: {}",
                            r.path.as_deref().unwrap_or(""),
                            e
                        );
                    }
                }
            }
            Action::Close => {
                if !flush(s, r, done) {
                    return;
                }
                if let Some(done_file) = close(r) {
                    status(s, r, "status", "NetStream.Record.Stop");
                    done.push((r.name.clone(), done_file, r.ctx));
                }
            }
        }
    }
}

/// Bytes of pending tags that make a write on their own.
const FLUSH_AT: usize = 64 * 1024;

/// Writes the pending tags; false when that failed (the file is closed then, see `fail`).
fn flush(s: &mut Session, r: &mut Rec, done: &mut Vec<(String, String, CtxRef)>) -> bool {
    if r.pending.is_empty() {
        return true;
    }
    let Some(f) = r.file.as_mut() else {
        r.pending.clear();
        return true;
    };
    let res = f.write_all(&r.pending);
    let n = r.pending.len() as u64;
    r.pending.clear();
    match res {
        Ok(()) => {
            r.offset += n;
            true
        }
        Err(e) => {
            fail(s, r, &format!("write: {e}"), done);
            false
        }
    }
}

/// A write failed: what was written up to the last whole tag stays (the tail is cut off), the
/// file is closed once and reported, and this recorder writes nothing more in this publish.
fn fail(s: &mut Session, r: &mut Rec, why: &str, done: &mut Vec<(String, String, CtxRef)>) {
    let path = r.path.clone().unwrap_or_default();
    log_error!(
        s.log,
        "rtmp: record: \"{}\": {}; the file is closed and the recorder stops",
        path,
        why
    );
    if let Some(f) = r.file.as_ref() {
        let _ = f.set_len(r.offset);
    }
    status(s, r, "error", "NetStream.Record.Failed");
    if let Some(p) = close(r) {
        done.push((r.name.clone(), p, r.ctx));
    }
    r.fr.failed();
}

fn close(r: &mut Rec) -> Option<String> {
    r.pending.clear();
    let f = r.file.take()?;
    drop(f);
    r.path.clone()
}

/// `record_notify`: the publisher hears of its recordings.
fn status(s: &mut Session, r: &Rec, level: &str, code: &str) {
    if r.conf.notify() {
        let id = s.ext.get::<RecordCtx>().map_or(1, |c| c.stream_id);
        s.send_status(id, level, code, &r.name);
    }
}

/// `record_path/<name escaped><-unix time if unique><suffix, strftime'd if it has %>`; never an
/// existing file (the C module truncates one): `-1`, `-2`… are added before the suffix. Appends
/// continue the existing file instead.
fn open(r: &mut Rec, stream: &str) -> Result<(), String> {
    let now = unix_time();
    let suffix = r.conf.suffix();
    let suffix = if suffix.contains('%') {
        strftime(suffix, now)
    } else {
        suffix.to_string()
    };
    let mut base = format!("{}/{}", r.conf.path(), escape_name(stream));
    if r.conf.unique() {
        base = format!("{base}-{now}");
    }
    let first = format!("{base}{suffix}");
    if r.conf.append() && !r.made.contains(&first) {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&first)
            .map_err(|e| format!("cannot open \"{first}\": {e}"))?;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("\"{first}\": {e}"))?;
        if len > 0 {
            let mut tail = vec![0u8; len.min(1 << 20) as usize];
            f.seek(SeekFrom::Start(len - tail.len() as u64))
                .map_err(|e| format!("\"{first}\": {e}"))?;
            f.read_exact(&mut tail)
                .map_err(|e| format!("\"{first}\": {e}"))?;
            f.seek(SeekFrom::End(0))
                .map_err(|e| format!("\"{first}\": {e}"))?;
            let mut head = vec![0u8; len.min(1 << 20) as usize];
            f.seek(SeekFrom::Start(0)).map_err(|e| format!("\"{first}\": {e}"))?;
            f.read_exact(&mut head).map_err(|e| format!("\"{first}\": {e}"))?;
            f.seek(SeekFrom::End(0)).map_err(|e| format!("\"{first}\": {e}"))?;
            r.fr.take_over_meta(&head);
            r.fr.open_append(len, tail_timestamp(&tail).unwrap_or(0));
        }
        lock(r, &f, &first)?;
        return opened(r, f, first, len);
    }
    let mut n = 0;
    loop {
        let path = if n == 0 {
            first.clone()
        } else {
            format!("{base}-{n}{suffix}")
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => {
                lock(r, &f, &path)?;
                return opened(r, f, path, 0);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => return Err(format!("cannot create \"{path}\": {e}")),
        }
    }
}

fn opened(r: &mut Rec, f: File, path: String, len: u64) -> Result<(), String> {
    r.file = Some(f);
    r.offset = len;
    r.opened_ms = now_ms();
    r.made.push(path.clone());
    r.path = Some(path);
    Ok(())
}

/// `record_lock on`: an exclusive lock others can test (never waits).
fn lock(r: &Rec, f: &File, path: &str) -> Result<(), String> {
    if r.conf.lock() && !crate::ngx::files::try_lock(f) {
        return Err(format!("cannot lock \"{path}\": another process holds it"));
    }
    Ok(())
}

/// Stream names become one file name: everything but letters, digits and `-._~` is
/// percent-escaped (as the C module does), so a name never leaves `record_path`.
pub fn escape_name(name: &str) -> String {
    let out = rtmp_proto::http::percent_encode(name, b"");
    // "." and ".." stay names of files, never of directories.
    if out.chars().all(|c| c == '.') {
        return out.replace('.', "%2E");
    }
    out
}

/// Closes every recorder (end of the publish).
fn stop_all(s: &mut Session) {
    let Some(mut ctx) = s.ext.remove::<RecordCtx>() else {
        return;
    };
    let mut done = Vec::new();
    for r in &mut ctx.recs {
        finish(s, r, &ctx.stream, &mut done);
    }
    put_back(s, ctx, done);
    s.ext.remove::<RecordCtx>();
}

/// Stops a recorder and closes its file.
fn finish(s: &mut Session, r: &mut Rec, stream: &str, done: &mut Vec<(String, String, CtxRef)>) {
    let actions = r.fr.stop();
    apply(s, r, stream, actions, done);
    if let Some(p) = close(r) {
        done.push((r.name.clone(), p, r.ctx));
    }
}

/// Gives the session its record state back, then reports the files closed meanwhile (the
/// `record_done` hooks may look at the session).
fn put_back(s: &mut Session, ctx: RecordCtx, done: Vec<(String, String, CtxRef)>) {
    let (stream, args) = (ctx.stream.clone(), ctx.args.clone());
    s.ext.insert(ctx);
    report_with(s, done, &stream, &args);
}

fn report_with(s: &mut Session, done: Vec<(String, String, CtxRef)>, stream: &str, args: &str) {
    for (recorder, path, conf) in done {
        log_info!(
            s.log,
            "rtmp: record: recorder \"{}\" closed \"{}\"",
            recorder,
            path
        );
        let d = RecordDone {
            recorder,
            path,
            name: stream.to_string(),
            args: args.to_string(),
            conf,
        };
        s.record_done(&d);
    }
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    if s.ext
        .get::<RecordCtx>()
        .is_some_and(|c| c.stream_id == stream_id)
    {
        stop_all(s);
    }
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    stop_all(s);
}

/// The control API's `record/start|stop` on this session: the recorder `rec` ("" for the
/// application's own) starts or stops; returns the path of the file opened or closed.
pub fn control(s: &mut Session, rec: &str, start: bool) -> Option<String> {
    let mut ctx = s.ext.remove::<RecordCtx>()?;
    let mut done = Vec::new();
    let mut answer = None;
    for r in ctx.recs.iter_mut().filter(|r| r.name == rec) {
        if start {
            if !r.fr.is_open() {
                r.fr.start();
                answer = Some(format!("{}/{}", r.conf.path(), escape_name(&ctx.stream)));
            }
        } else if r.fr.is_open() {
            answer = r.path.clone();
            finish(s, r, &ctx.stream, &mut done);
        }
    }
    put_back(s, ctx, done);
    answer
}

#[cfg(test)]
mod tests {
    use super::escape_name;

    #[test]
    fn names_stay_in_the_directory() {
        assert_eq!(escape_name("cam1"), "cam1");
        assert_eq!(escape_name("../etc/passwd"), "..%2Fetc%2Fpasswd");
        assert_eq!(escape_name(".."), "%2E%2E");
        assert_eq!(escape_name("a b"), "a%20b");
    }
}
