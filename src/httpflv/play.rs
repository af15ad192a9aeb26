//! One HTTP-FLV (or WebSocket-FLV) player: the request's target, its virtual session, the
//! response header once the play is accepted, and the request's events afterwards.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use nginx_sys::ngx_int_t;
use rtmp_proto::caps::Capabilities;
use rtmp_proto::websocket::{self, FrameReader};

use crate::core::peer::{Flush, Peer, Wire};
use crate::core::session::{ConnectInfo, PlayState, Session};
use crate::core::{server_by_port, CoreModule};
use crate::log_info;
use crate::ngx::conn::Recv;
use crate::ngx::http::{Content, HttpOut, Request, RequestEvents, NGX_DONE, NGX_ERROR};

use super::FlvLiveModule;

/// What the URL names: nginx-http-flv-module's `?port=1935&app=live&stream=name`, or the path
/// style `/<location>/<app>/<name>.flv`.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub port: Option<u16>,
    pub app: String,
    pub name: String,
}

pub fn target(uri: &str, arg: impl Fn(&str) -> Option<String>) -> Result<Target, &'static str> {
    let port = match arg("port") {
        Some(p) => Some(p.parse::<u16>().map_err(|_| "bad port argument")?),
        None => None,
    };
    if let Some(app) = arg("app") {
        let name = arg("stream").unwrap_or_default();
        return Ok(Target { port, app, name });
    }
    let mut parts = uri.split('/').filter(|p| !p.is_empty()).rev();
    let (Some(last), Some(app)) = (parts.next(), parts.next()) else {
        return Err("the URL names no application and stream (/app/name.flv or ?app=&stream=)");
    };
    let name = last.strip_suffix(".flv").unwrap_or(last);
    Ok(Target { port, app: app.to_string(), name: name.to_string() })
}

/// HTTP status for a refused play.
fn refusal_status(code: Option<&str>) -> u32 {
    match code {
        Some("NetStream.Play.StreamNotFound") => 404,
        Some("NetStream.Play.BadName") | Some("NetStream.Publish.BadName") => 400,
        _ => 403,
    }
}

/// A player kept in its request's pool; dropped (and so leaving its stream) when the request
/// is freed, whatever ended it.
pub struct FlvPlay {
    session: Session,
    /// The response header is out.
    started: bool,
    ws_accept: Option<String>,
    ws: Option<FrameReader>,
    ws_in: BytesMut,
    /// The player left its stream: the response ends once what is queued is sent.
    finishing: bool,
}

impl Drop for FlvPlay {
    fn drop(&mut self) {
        self.session.end("http client gone");
    }
}

pub struct FlvContent;

impl Content for FlvContent {
    fn handle(r: Request) -> ngx_int_t {
        if !r.is_get() {
            return r.status(405);
        }
        let Some(conn) = r.conn() else { return NGX_ERROR };
        let t = match target(&r.uri(), |k| r.arg(k)) {
            Ok(t) => t,
            Err(why) => {
                log_info!(r.log(), "http-flv: {}", why);
                return r.status(400);
            }
        };
        let Some(srv_ctx) = server_by_port(t.port) else {
            log_info!(r.log(), "http-flv: no rtmp server listens on port {:?}", t.port);
            return r.status(404);
        };
        let srv = srv_ctx.srv::<CoreModule>();
        let Some(app_ctx) = srv.applications.iter().find(|(n, _)| *n == t.app).map(|(_, c)| *c) else {
            log_info!(r.log(), "http-flv: application \"{}\" not found", t.app);
            return r.status(404);
        };
        let ws_key = r.header("Sec-WebSocket-Key");
        let ws = !r.is_http2()
            && ws_key.is_some()
            && websocket::is_upgrade(
                r.header("Connection").as_deref(),
                r.header("Upgrade").as_deref(),
                r.header("Sec-WebSocket-Version").as_deref(),
            );
        let rc = r.discard_body();
        if rc != crate::ngx::http::NGX_OK {
            return rc;
        }
        // On a plain HTTP/1.x connection the body goes to the socket directly, framed by us as
        // nginx's chunked filter would frame it; TLS and HTTP/2 go through nginx's filters.
        let raw = r.plain_socket();
        let wire = match (ws, raw && r.will_chunk()) {
            (true, _) => Wire::WsFlv,
            (false, true) => Wire::FlvChunked,
            (false, false) => Wire::Flv,
        };
        let out = if raw { HttpOut::raw(r) } else { HttpOut::new(r) };
        let peer = Rc::new(Peer::http(conn, out, wire, srv.out_queue()));
        let scheme = if ws { "ws" } else { "http" };
        let info = ConnectInfo {
            app: t.app.clone(),
            args: String::new(),
            tc_url: format!("{}://{}/{}", scheme, r.host(), t.app),
            flashver: "flv_live 1.1".into(),
            swf_url: String::new(),
            page_url: r.header("Referer").unwrap_or_default(),
            object_encoding: 0.0,
            // A browser's FLV demuxer (mpegts.js) reads Enhanced FLV tags.
            caps: Capabilities { video: vec!["*".into()], audio: vec!["*".into()], enhanced: true },
        };
        log_info!(r.log(), "http-flv: {} play app=\"{}\" name=\"{}\"", scheme, t.app, t.name);
        let mut session = Session::virtual_player(conn, srv_ctx, app_ctx, peer, info);
        session.start_play(&t.name, &r.args());
        let play = FlvPlay {
            session,
            started: false,
            ws_accept: if ws { ws_key.map(|k| websocket::accept_key(&k)) } else { None },
            ws: ws.then(|| FrameReader::new(64 * 1024)),
            ws_in: BytesMut::new(),
            finishing: false,
        };
        if !r.keep_ctx::<FlvLiveModule, FlvPlay>(play) {
            return NGX_ERROR;
        }
        let Some(p) = player(r) else { return NGX_ERROR };
        r.set_event_handlers::<FlvEvents>();
        r.no_keepalive();
        match advance(r, p) {
            Next::Status(code) => {
                // The player leaves its stream now, not when the pool goes.
                p.session.end("play refused");
                r.clear_ctx::<FlvLiveModule>();
                r.status(code)
            }
            Next::Fail => NGX_ERROR,
            Next::Wait => {
                r.hold();
                NGX_DONE
            }
        }
    }
}

enum Next {
    /// Answer with this status (nothing was sent yet).
    Status(u32),
    /// Close the connection.
    Fail,
    /// Keep the request; its events go on.
    Wait,
}

/// Sends the response header once the play is accepted.
fn advance(r: Request, p: &mut FlvPlay) -> Next {
    if p.started {
        return Next::Wait;
    }
    match p.session.play_state() {
        PlayState::Waiting => Next::Wait,
        PlayState::Refused { code, reason } => {
            log_info!(r.log(), "http-flv: play refused: {}", reason);
            Next::Status(refusal_status(code.as_deref()))
        }
        PlayState::Playing => {
            p.started = true;
            let rc = match &p.ws_accept {
                Some(accept) => {
                    r.upgrade();
                    if !r.add_header("Upgrade", "websocket") || !r.add_header("Sec-WebSocket-Accept", accept) {
                        return Next::Fail;
                    }
                    r.send_stream_header(101, None)
                }
                None => {
                    if !r.add_header("Cache-Control", "no-cache") {
                        return Next::Fail;
                    }
                    r.send_stream_header(200, Some("video/x-flv"))
                }
            };
            if rc == NGX_ERROR || rc > crate::ngx::http::NGX_OK {
                return Next::Fail;
            }
            // The body was framed for the chunking nginx was expected to do.
            let framed_by_us = p.session.peer.wire() == Wire::FlvChunked;
            if p.ws_accept.is_none() && p.session.peer.http_out().is_some_and(|o| o.is_raw()) && r.chunked() != framed_by_us {
                log_info!(r.log(), "http-flv: unexpected response framing");
                return Next::Fail;
            }
            r.post_write();
            Next::Wait
        }
    }
}

fn player<'a>(r: Request) -> Option<&'a mut FlvPlay> {
    r.ctx_mut::<FlvLiveModule, FlvPlay>()
}

/// The request's events after the content handler.
struct FlvEvents;

impl RequestEvents for FlvEvents {
    fn on_read(r: Request) {
        let Some(p) = player(r) else { return };
        if !p.started {
            p.session.resume();
            return finish(r, advance(r, p));
        }
        if p.ws.is_some() {
            return finish(r, read_ws(r, p));
        }
        // Nothing is expected from an HTTP player: this notices it went away.
        r.test_reading();
    }

    fn on_write(r: Request) {
        let Some(p) = player(r) else { return };
        if !p.started {
            return;
        }
        if r.write_timed_out() {
            r.clear_write_timed_out();
            if !p.session.peer.take_merge_timer() {
                p.session.end("write timed out (\"timeout\")");
                return finish(r, Next::Fail);
            }
        }
        if let Some(rd) = p.session.peer.take_redirect() {
            p.session.redirect(&rd);
        }
        if let Some(reason) = p.session.take_closing() {
            if p.ws.is_some() {
                p.session.peer.push(Bytes::from(websocket::close_frame(websocket::CLOSE_GOING_AWAY)));
            }
            // It leaves its stream now; what is queued still leaves (a chunk cut short would
            // break the framing), then the last chunk.
            p.session.end(&reason);
            p.finishing = true;
        }
        let peer = p.session.peer.clone();
        match peer.flush() {
            Flush::Done => {
                if let Some(c) = r.conn() {
                    c.clear_write_timer();
                }
                if p.finishing {
                    r.finish_stream();
                }
            }
            Flush::Again => {
                // A client that stops reading meets the write timeout.
                if let Some(c) = r.conn() {
                    c.write_timer(p.session.srv().timeout_ms());
                }
                if peer.http_out().is_some_and(|o| !o.wait_writable()) {
                    p.session.end("could not arm the write event");
                    finish(r, Next::Fail)
                }
            }
            Flush::Error => {
                p.session.end("send failed");
                finish(r, Next::Fail)
            }
        }
    }
}

/// WebSocket input: pings are answered, a close frame or a broken frame ends the player.
fn read_ws(r: Request, p: &mut FlvPlay) -> Next {
    let Some(conn) = r.conn() else { return Next::Fail };
    loop {
        match conn.recv(&mut p.ws_in, 4096) {
            Recv::Data(_) => {}
            Recv::Again => break,
            Recv::Eof | Recv::Error => {
                p.session.end("websocket client closed the connection");
                return Next::Fail;
            }
        }
        let Some(reader) = p.ws.as_mut() else { return Next::Fail };
        if let Err(e) = reader.feed(&p.ws_in) {
            p.ws_in.clear();
            p.session.end(&format!("websocket: {e}"));
            return Next::Fail;
        }
        p.ws_in.clear();
        while let Some(f) = reader.next() {
            match f.opcode {
                websocket::OP_PING => {
                    p.session.peer.push(Bytes::from(websocket::pong_frame(&f.payload)));
                }
                websocket::OP_CLOSE => {
                    p.session.peer.push(Bytes::from(websocket::close_frame(websocket::CLOSE_NORMAL)));
                    p.session.peer.request_close("websocket client sent close".into());
                }
                _ => {}
            }
        }
    }
    if !conn.handle_read_event() {
        p.session.end("could not arm the read event");
        return Next::Fail;
    }
    Next::Wait
}

/// Acts on `next` as the last thing an event handler does (finalizing may free the player).
fn finish(r: Request, next: Next) {
    match next {
        Next::Wait => {}
        Next::Status(code) => r.finalize(code as ngx_int_t),
        Next::Fail => r.finalize(NGX_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(q: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| crate::ngx::http::query_arg(q, k)
    }

    #[test]
    fn both_url_styles_name_the_stream() {
        let t = target("/live", args("port=1935&app=live&stream=cam1")).unwrap();
        assert_eq!(t, Target { port: Some(1935), app: "live".into(), name: "cam1".into() });
        let t = target("/flv/live/cam1.flv", args("")).unwrap();
        assert_eq!(t, Target { port: None, app: "live".into(), name: "cam1".into() });
        let t = target("/live/cam1", args("token=x")).unwrap();
        assert_eq!((t.app.as_str(), t.name.as_str()), ("live", "cam1"));
        assert!(target("/cam1.flv", args("")).is_err());
        assert!(target("/a/b", args("port=x")).is_err());
    }

    #[test]
    fn refusals_map_to_statuses() {
        assert_eq!(refusal_status(Some("NetStream.Play.StreamNotFound")), 404);
        assert_eq!(refusal_status(Some("NetStream.Play.Forbidden")), 403);
        assert_eq!(refusal_status(None), 403);
    }
}
