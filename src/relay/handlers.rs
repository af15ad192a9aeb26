//! The relay module's hooks. On the client side: a publish or play carrying a relay URL (a notify
//! redirect) opens the relay; the end of that publish, or of the last play using a pull, closes
//! it. On the relay's own session: connect, createStream, then play (pull) or publish (push) on
//! the remote server, and once it says Start, the local publish or play.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::{Rc, Weak};

use rtmp_proto::caps::{self, Capabilities};
use rtmp_proto::client::{self, ClientFlow, Outcome};
use rtmp_proto::command::Command;
use rtmp_proto::message::msg_type;
use rtmp_proto::url::{RtmpUrl, UrlError};
use rtmp_proto::RawMessage;

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::peer::Peer;
use crate::core::session::{ConnectInfo, Outgoing, Session};
use crate::log_info;

use super::{Pull, RelayModule};

const FLASHVER: &str = "LNX 9,0,124,2";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Pull,
    Push,
}

/// State of a relay's own (outgoing) session.
struct RelayCtx {
    role: Role,
    url: RtmpUrl,
    /// connect, createStream, then play (pull) or publish (push) on the remote server.
    flow: ClientFlow,
    /// The stream's name on this server.
    local: String,
    /// The local publish (pull) or play (push) has begun.
    started: bool,
}

/// What a client's session started: pushes of its publishes, pulls its plays use.
#[derive(Default)]
struct Started {
    pushes: Vec<(u32, Weak<Peer>)>,
    /// With the pull's connection: a later pull of the same name is not theirs to count down.
    pulls: Vec<(u32, (usize, String), Weak<Peer>)>,
}

fn started(s: &mut Session) -> Option<&mut Started> {
    if s.ext.get::<Started>().is_none() {
        s.ext.insert(Started::default());
    }
    s.ext.get_mut::<Started>()
}

/// Where to connect: the URL's stream name defaults to the local one; the host must be an
/// address (a worker must not block on name resolution; arut has the same rule).
fn target(url: &str, local: &str) -> Result<(RtmpUrl, SocketAddr), String> {
    let u = match RtmpUrl::parse(url) {
        Ok(u) => u,
        Err(UrlError::NoName(_)) => {
            RtmpUrl::parse(&format!("{}/{}", url.trim_end_matches('/'), local)).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let ip: IpAddr = if u.host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST.into()
    } else {
        u.host.parse().map_err(|_| format!("{url}: the host must be an IP address (workers resolve no names)"))?
    };
    let addr = SocketAddr::new(ip, u.port);
    Ok((u, addr))
}

/// Opens the relay's connection.
fn open(s: &Session, role: Role, url: &str, local: &str) -> Result<Rc<Peer>, String> {
    let app = s.app_ctx.ok_or("no application")?;
    let (u, addr) = target(url, local)?;
    let what = match role {
        Role::Pull => format!("pull \"{local}\" from {u}"),
        Role::Push => format!("push \"{local}\" to {u}"),
    };
    let info = ConnectInfo {
        app: s.info.app.clone(),
        tc_url: u.tc_url(),
        flashver: FLASHVER.to_string(),
        // Whatever codec the stream has is relayed.
        caps: Capabilities { video: vec!["*".into()], audio: vec!["*".into()], enhanced: true },
        ..ConnectInfo::default()
    };
    log_info!(s.log, "rtmp: relay: {}", what);
    let flow = match role {
        // Any Enhanced RTMP codec is welcome: it is only forwarded.
        Role::Pull => ClientFlow::new(client::Role::Play, &u, caps::client_props(&["*"])),
        Role::Push => ClientFlow::new(client::Role::Publish, &u, Vec::new()),
    };
    let ctx = RelayCtx { role, url: u, flow, local: local.to_string(), started: false };
    let o = Outgoing { addr, srv_ctx: s.srv_ctx, app_ctx: app, info, what, log: s.log };
    Session::connect_out(o, |ext| ext.insert(ctx))
}

/// After live accepted a publish redirected to `rtmp://`: push it there too.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(url) = req.relay.as_deref() else { return Step::Continue };
    match open(s, Role::Push, url, &req.name) {
        Ok(peer) => {
            if let Some(st) = started(s) {
                st.pushes.push((req.stream_id, Rc::downgrade(&peer)));
            }
        }
        // The local stream goes on; the log says why it is not relayed.
        Err(e) => log_info!(s.log, "rtmp: relay: push \"{}\" to {}: {}", req.name, url, e),
    }
    Step::Continue
}

/// A play redirected to `rtmp://`: pull the stream unless a pull of it runs already; the player
/// then joins the local stream and gets it once the pull publishes.
pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    let Some(url) = req.relay.as_deref() else { return Step::Continue };
    let Some(app) = s.app_ctx else { return Step::Continue };
    let key = (app.id(), req.name.clone());
    let main = s.srv_ctx.main::<RelayModule>();
    let running = main.pulls.borrow_mut().get_mut(&key).filter(|p| p.peer.strong_count() > 0).map(|p| {
        p.players.push((Rc::downgrade(&s.peer), req.stream_id));
        p.peer.clone()
    });
    let pull = match running {
        Some(peer) => peer,
        None => match open(s, Role::Pull, url, &req.name) {
            Ok(peer) => {
                let weak = Rc::downgrade(&peer);
                let players = vec![(Rc::downgrade(&s.peer), req.stream_id)];
                main.pulls.borrow_mut().insert(key.clone(), Pull { peer: weak.clone(), players });
                weak
            }
            Err(e) => {
                s.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", "Relay failed");
                return Step::Close(format!("relay: pull \"{}\" from {}: {}", req.name, url, e));
            }
        },
    };
    if let Some(st) = started(s) {
        st.pulls.push((req.stream_id, key, pull));
    }
    Step::Continue
}

/// The relay's handshake is done: connect to the remote application.
pub fn outgoing(s: &mut Session) -> Step {
    let Some(ctx) = s.ext.get_mut::<RelayCtx>() else { return Step::Continue };
    let connect = ctx.flow.connect();
    s.set_out_chunk_size(s.srv().chunk_size());
    s.send_upstream(0, connect);
    Step::Stop
}

/// The remote server's answers: createStream, then play or publish, then the local side starts.
pub fn reply(s: &mut Session, _stream_id: u32, cmd: &Command) -> Step {
    let Some(ctx) = s.ext.get_mut::<RelayCtx>() else { return Step::Continue };
    match ctx.flow.on_command(cmd) {
        Outcome::Send { stream_id, payload } => s.send_upstream(stream_id, payload),
        Outcome::Rejected { what, code, description } => {
            return Step::Close(format!("the server refused {what}: {code} ({description})"));
        }
        Outcome::Status { code }
            if matches!(
                code.as_str(),
                "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" | "NetStream.Play.Complete"
            ) =>
        {
            return Step::Close(format!("the server ended the stream ({code})"));
        }
        Outcome::Started { stream_id } => {
            let (role, name) = (ctx.role, ctx.local.clone());
            ctx.started = true;
            let code = if role == Role::Pull { "NetStream.Play.Start" } else { "NetStream.Publish.Start" };
            log_info!(s.log, "rtmp: relay: {}: {}", s.relay.as_deref().unwrap_or_default(), code);
            match role {
                Role::Pull => s.publish_local(PublishReq {
                    stream_id,
                    tid: 0.0,
                    name,
                    args: String::new(),
                    kind: "live".into(),
                    relay: None,
                }),
                Role::Push => s.play_local(PlayReq { name, ..PlayReq::new(stream_id, 0.0, "", -1.0, -1.0, false) }),
            }
        }
        Outcome::Status { .. } | Outcome::Nothing => {}
    }
    Step::Stop
}

/// A pulled stream's server-side notes (`|RtmpSampleAccess`) are not media of the stream.
pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    // Every publisher's every message passes here: only a relay's own session looks further.
    if s.relay.is_none() || msg.msg_type != msg_type::AMF0_DATA {
        return Step::Continue;
    }
    if msg.payload.first() == Some(&0x02) && msg.payload.get(3) == Some(&b'|') {
        return Step::Stop;
    }
    Step::Continue
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    finish(s, Some(stream_id));
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    finish(s, None);
    // A pull that ends forgets its place, so the next redirected player starts a new one.
    let Some(ctx) = s.ext.get::<RelayCtx>() else { return };
    if ctx.role != Role::Pull {
        return;
    }
    let Some(app) = s.app_ctx else { return };
    let key = (app.id(), ctx.local.clone());
    let mut pulls = s.srv_ctx.main::<RelayModule>().pulls.borrow_mut();
    if !pulls.get(&key).is_some_and(|p| std::ptr::eq(p.peer.as_ptr(), Rc::as_ptr(&s.peer))) {
        return;
    }
    let Some(pull) = pulls.remove(&key) else { return };
    // Players of a pull that never started would wait for nothing: they are told and closed.
    // (Once it ran, they got UnpublishNotify and stay, as players of any stream that ends.)
    if ctx.started {
        return;
    }
    let why = format!("relay: pull \"{}\" from {} failed", ctx.local, ctx.url);
    for (peer, stream_id) in pull.players {
        if let Some(p) = peer.upgrade() {
            p.send_status(stream_id, "error", "NetStream.Play.StreamNotFound", "Relay failed");
            p.request_close(why.clone());
        }
    }
}

/// The client's publish (or play) of `stream_id` (or all) ended: its pushes stop, its pulls
/// lose a player and stop with the last one.
fn finish(s: &mut Session, stream_id: Option<u32>) {
    let Some(st) = s.ext.get_mut::<Started>() else { return };
    let ends = |id: u32| stream_id.is_none_or(|x| x == id);
    let (pushes, keep): (Vec<_>, Vec<_>) = st.pushes.drain(..).partition(|(id, _)| ends(*id));
    st.pushes = keep;
    let (pulls, keep): (Vec<_>, Vec<_>) = st.pulls.drain(..).partition(|(id, _, _)| ends(*id));
    st.pulls = keep;
    for (_, peer) in pushes {
        if let Some(p) = peer.upgrade() {
            p.request_close("the published stream ended".into());
        }
    }
    let mut all = s.srv_ctx.main::<RelayModule>().pulls.borrow_mut();
    for (_, key, peer) in pulls {
        let Some(pull) = all.get_mut(&key).filter(|p| p.peer.ptr_eq(&peer)) else { continue };
        let me = Rc::as_ptr(&s.peer);
        pull.players.retain(|(p, id)| !(std::ptr::eq(p.as_ptr(), me) && stream_id.is_none_or(|x| x == *id)));
        if pull.players.is_empty() {
            if let Some(p) = pull.peer.upgrade() {
                p.request_close("no player left".into());
            }
            all.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let (u, a) = target("rtmp://127.0.0.1:1940/origin/src?k=v", "local").unwrap();
        assert_eq!((u.app.as_str(), u.name.as_str(), a.to_string()), ("origin", "src?k=v", "127.0.0.1:1940".into()));
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:1940/origin");
        // No stream name in the URL: the local one.
        let (u, a) = target("RTMP://[::1]/origin/", "cam").unwrap();
        assert_eq!((u.name.as_str(), a.to_string()), ("cam", "[::1]:1935".into()));
        let (_, a) = target("rtmp://localhost/origin", "cam").unwrap();
        assert_eq!(a.to_string(), "127.0.0.1:1935");
        assert!(target("rtmp://origin.example/app/x", "cam").unwrap_err().contains("IP address"));
        assert!(target("rtmp://127.0.0.1:99999/app/x", "cam").is_err());
        assert!(target("rtmp://127.0.0.1", "cam").is_err());
    }
}
