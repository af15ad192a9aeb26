//! `rtmp_hls` in an http location: Low-Latency HLS from the shared state, for streams published in
//! any worker. `<location>/<app>/<name>.m3u8` is the playlist (blocking reload with `_HLS_msn` /
//! `_HLS_part`, delta updates with `_HLS_skip`), `<location>/<app>/<name>/<file>` its init
//! segments, parts and segments. A request that has to wait (a playlist for a part that does not
//! exist yet, the hinted part) is held and looked at again every few milliseconds; it gets 503
//! (playlist) or 404 (part) after three target durations.

use rtmp_proto::hls::ll::{Block, PartAvail, RenditionReport};

use crate::ngx::http::{Content, Request, NGX_DONE, NGX_ERROR};
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};
use nginx_sys::ngx_int_t;

use super::zone::{self, Entry};

/// How often a held request looks at the state again.
const POLL_MS: u64 = 5;
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

pub struct LlContent;

enum Target {
    Playlist { app: String, name: String },
    File { app: String, name: String, file: FileKind, file_name: String },
}

#[derive(Clone, Copy)]
enum FileKind {
    Init(u64),
    Part(u64, u32),
    Segment(u64),
}

fn parse_file(f: &str) -> Option<FileKind> {
    if let Some(id) = f.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
        return id.parse().ok().map(FileKind::Init);
    }
    let stem = f.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some(FileKind::Part(m.parse().ok()?, p.parse().ok()?)),
        None => stem.parse().ok().map(FileKind::Segment),
    }
}

fn target(uri: &str) -> Option<Target> {
    let parts: Vec<&str> = uri.split('/').filter(|p| !p.is_empty()).collect();
    let ok = |s: &&str| !s.starts_with('.') && !s.contains('\\');
    if let Some(last) = parts.last().and_then(|l| l.strip_suffix(".m3u8")) {
        let app = parts.len().checked_sub(2).and_then(|i| parts.get(i))?;
        return (ok(app) && ok(&last) && !last.is_empty())
            .then(|| Target::Playlist { app: app.to_string(), name: last.to_string() });
    }
    let n = parts.len();
    let (app, name, file) = (parts.get(n.checked_sub(3)?)?, parts.get(n - 2)?, parts.get(n - 1)?);
    let kind = parse_file(file)?;
    (ok(app) && ok(name)).then(|| Target::File {
        app: app.to_string(),
        name: name.to_string(),
        file: kind,
        file_name: file.to_string(),
    })
}

fn number(r: Request, name: &str) -> Result<Option<u64>, ()> {
    match r.arg(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ()),
    }
}

impl Content for LlContent {
    fn handle(r: Request) -> ngx_int_t {
        if !r.is_get() && !r.is_head() {
            return r.status(405);
        }
        let Some(t) = target(&r.uri()) else { return r.status(404) };
        match t {
            Target::Playlist { app, name } => {
                let (Ok(msn), Ok(part)) = (number(r, "_HLS_msn"), number(r, "_HLS_part")) else {
                    return r.status(400);
                };
                if zone::find(&app, &name).is_none() {
                    if let Some(text) = master(&app, &name) {
                        return r.respond(200, Some(PLAYLIST_TYPE), text.as_bytes());
                    }
                }
                let skip = r.arg("_HLS_skip").is_some_and(|v| v == "YES" || v == "v2");
                let ask = Ask::Playlist { msn, part, skip };
                serve_or_hold(r, app, name, ask)
            }
            Target::File { app, name, file, file_name } => serve_or_hold(r, app, name, Ask::File { kind: file, file_name }),
        }
    }
}

enum Ask {
    Playlist { msn: Option<u64>, part: Option<u64>, skip: bool },
    File { kind: FileKind, file_name: String },
}

enum Answer {
    Done(ngx_int_t),
    Wait,
}

fn serve_or_hold(r: Request, app: String, name: String, ask: Ask) -> ngx_int_t {
    let started = now_ms();
    if let Answer::Done(rc) = attempt(r, &app, &name, &ask, started) {
        return rc;
    }
    let timer = Timer::new(move || {
        match attempt(r, &app, &name, &ask, started) {
            Answer::Done(rc) => {
                r.finalize(rc);
                Again::Stop
            }
            Answer::Wait => Again::After(POLL_MS),
        }
    });
    timer.arm(POLL_MS);
    if r.keep(timer).is_none() {
        return NGX_ERROR;
    }
    r.hold();
    NGX_DONE
}

/// Answers now if it can (or must: held since `started` for three target durations of the
/// stream, read again at every look), else says wait.
fn attempt(r: Request, app: &str, name: &str, ask: &Ask, started: u64) -> Answer {
    let Some(e) = zone::find(app, name) else { return Answer::Done(r.status(404)) };
    let late = now_ms().saturating_sub(started) >= e.state.target_duration_s().saturating_mul(3000);
    match ask {
        Ask::Playlist { msn, part, skip } => {
            if e.state.last().is_none() && !e.state.ended {
                return if late { Answer::Done(r.status(404)) } else { Answer::Wait };
            }
            match e.state.block(*msn, *part) {
                Block::BadRequest => Answer::Done(r.status(400)),
                Block::Wait if late => Answer::Done(r.status(503)),
                Block::Wait => Answer::Wait,
                Block::Ready => Answer::Done(playlist(r, app, &e, *skip, msn.is_some())),
            }
        }
        Ask::File { kind, file_name } => {
            let (ready, range) = match *kind {
                FileKind::Init(id) => (e.state.map_exists(id), None),
                FileKind::Segment(msn) => (e.state.segment_exists(msn), None),
                FileKind::Part(msn, i) => match e.state.part_status(msn, i) {
                    PartAvail::Ready => (true, e.state.part_range(msn, i).map(|r| (msn, r))),
                    PartAvail::Wait if late => return Answer::Done(r.status(404)),
                    PartAvail::Wait => return Answer::Wait,
                    PartAvail::Gone => (false, None),
                },
            };
            if !ready {
                return Answer::Done(r.status(404));
            }
            Answer::Done(match range {
                Some((msn, (offset, size))) => part(r, &e, msn, offset, size),
                None => file(r, &e, file_name),
            })
        }
    }
}

fn playlist(r: Request, app: &str, e: &Entry, skip: bool, blocking: bool) -> ngx_int_t {
    let reports: Vec<RenditionReport> = e
        .siblings
        .iter()
        .filter_map(|s| {
            let (last_msn, last_part) = zone::find(app, s)?.state.last()?;
            Some(RenditionReport { uri: format!("{s}.m3u8"), last_msn, last_part })
        })
        .collect();
    let text = e.state.render(&format!("{}/", e.name), skip, &reports);
    // A blocking answer names one moment of the stream: caches may keep it; a plain one changes.
    let cache = if blocking && !e.state.ended { "max-age=60" } else { "no-cache" };
    if !r.add_header("Cache-Control", cache) {
        return NGX_ERROR;
    }
    r.respond(200, Some(PLAYLIST_TYPE), text.as_bytes())
}

/// `hls_variant`'s master playlist for `base`, as HLS wrote it next to the variants' files, with
/// every variant pointing at its Low-Latency playlist here (`<variant>.m3u8`).
fn master(app: &str, base: &str) -> Option<String> {
    let e = zone::variant_of(app, base)?;
    let hls_path = e.dir.parent()?;
    let text = [hls_path.join(format!("{base}.m3u8")), hls_path.join(base).join("index.m3u8")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().filter(|t| t.contains("#EXT-X-STREAM-INF")))?;
    Some(master_for_ll(&text))
}

/// Rewrites a master playlist's variant URIs (`name.m3u8`, `name/index.m3u8`, with or without
/// `hls_base_url`) to `name.m3u8`.
fn master_for_ll(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            out.push_str(l);
        } else {
            let path = l.split(['?', '#']).next().unwrap_or(l);
            let mut comps = path.rsplit('/');
            let last = comps.next().unwrap_or(path);
            let name = match last {
                "index.m3u8" => comps.next().unwrap_or(last),
                _ => last.strip_suffix(".m3u8").unwrap_or(last),
            };
            out.push_str(name);
            out.push_str(".m3u8");
        }
        out.push('\n');
    }
    out
}

/// A part: its byte range of its segment's file.
fn part(r: Request, e: &Entry, msn: u64, offset: u64, size: u64) -> ngx_int_t {
    use std::os::unix::fs::FileExt;
    let read = std::fs::File::open(e.dir.join(format!("{msn}.m4s"))).and_then(|f| {
        let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0)];
        f.read_exact_at(&mut buf, offset).map(|_| buf)
    });
    match read {
        Ok(bytes) => media(r, &bytes),
        Err(_) => r.status(404),
    }
}

fn media(r: Request, bytes: &[u8]) -> ngx_int_t {
    if !r.add_header("Cache-Control", "max-age=60") {
        return NGX_ERROR;
    }
    r.respond(200, Some("video/mp4"), bytes)
}

fn file(r: Request, e: &Entry, file_name: &str) -> ngx_int_t {
    match std::fs::read(e.dir.join(file_name)) {
        Ok(bytes) => media(r, &bytes),
        // Deleted in between (it left the window): as if it never was.
        Err(_) => r.status(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_uris() {
        let m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\ncam_low.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\n\
                 cam_hi/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3\nhttp://cdn/hls/cam_mid.m3u8?x=1\n";
        assert_eq!(
            master_for_ll(m),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\ncam_low.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\ncam_hi.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3\ncam_mid.m3u8\n"
        );
    }

    #[test]
    fn uris() {
        assert!(matches!(target("/ll/live/cam.m3u8"), Some(Target::Playlist { app, name }) if app == "live" && name == "cam"));
        assert!(matches!(target("/ll/live/cam/12.3.m4s"), Some(Target::File { file: FileKind::Part(12, 3), .. })));
        assert!(matches!(target("/ll/live/cam/12.m4s"), Some(Target::File { file: FileKind::Segment(12), .. })));
        assert!(matches!(target("/ll/live/cam/init-7.mp4"), Some(Target::File { file: FileKind::Init(7), .. })));
        assert!(target("/ll/live/cam/../x.m4s").is_none());
        assert!(target("/ll/live/cam/a.b.m4s").is_none());
        assert!(target("/ll/live/cam/x.ts").is_none());
        assert!(target("/cam.m3u8").is_none());
        assert!(target("/ll/live/..m3u8").is_none());
    }
}
