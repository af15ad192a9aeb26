//! Outgoing connections (relays): a session in the client role, opened by the worker. Its local
//! hooks run as for a client; the relay module drives the remote side with these calls.

use std::rc::Rc;

use bytes::Bytes;
use rtmp_proto::command::{self, Command};
use rtmp_proto::message::{csid, msg_type, Control};
use rtmp_proto::session::{ClientSession, SessionConfig};
use rtmp_proto::RawMessage;

use super::{encode, ConnectInfo, Proto, Request, Session};
use crate::core::ext::Ext;
use crate::core::hooks::{PlayReq, PublishReq};
use crate::core::peer::Peer;
use crate::core::{hooks, CoreModule};
use crate::log_debug;
use crate::ngx::log::Log;
use crate::ngx::module::CtxRef;

/// An outgoing connection to open (see `Session::connect_out`).
pub struct Outgoing {
    pub addr: crate::ngx::upstream::PeerAddr,
    /// A link to another worker of this nginx (see `Session::internal`).
    pub internal: bool,
    /// TLS (rtmps): the context and the server's host name (SNI, certificate check).
    pub tls: Option<(&'static crate::ngx::tls::TlsClient, String)>,
    pub srv_ctx: CtxRef,
    /// The local application the relayed stream lives in.
    pub app_ctx: CtxRef,
    /// What the session says of itself locally (app, tcUrl… of the remote end).
    pub info: ConnectInfo,
    /// For log lines: "pull rtmp://…".
    pub what: String,
    pub log: Log,
}

impl Session {
    /// A command to the server of an outgoing connection.
    pub fn send_upstream(&self, stream_id: u32, payload: Bytes) {
        let msg = RawMessage::new(msg_type::AMF0_COMMAND, stream_id, 0, payload);
        self.peer.push(encode(csid::COMMAND, &msg, self.peer.chunk_size.get()));
    }

    /// A user control message to the server of an outgoing connection (SetBufferLength).
    pub fn send_upstream_control(&self, uc: rtmp_proto::message::UserControl) {
        self.peer.push(encode(csid::PROTOCOL, &Control::UserControl(uc).to_message(), self.peer.chunk_size.get()));
    }

    /// Announces (Set Chunk Size) and uses a new outgoing chunk size; for outgoing connections,
    /// whose server sets no size for us.
    pub fn set_out_chunk_size(&mut self, size: u32) {
        self.proto.send_control(&Control::SetChunkSize(size));
        self.peer.chunk_size.set(self.proto.out_chunk_size());
        self.drain_output();
    }

    /// Tells the server of an outgoing connection how many bytes it may receive from us before it
    /// acknowledges (Window Acknowledgement Size: the server{}'s `ack_window`), as the C module's
    /// relays do before connect.
    pub fn send_ack_window(&mut self) {
        let window = self.srv().ack_window();
        self.proto.send_control(&Control::WindowAckSize(window));
        self.drain_output();
    }

    /// Runs the publish hooks for a stream that comes from elsewhere (a relay pulling it).
    pub fn publish_local(&mut self, req: PublishReq) {
        self.run_request(Request::Publish(req), 0);
    }

    /// Runs the play hooks for a stream that goes elsewhere (a relay pushing it).
    pub fn play_local(&mut self, req: PlayReq) {
        self.run_request(Request::Play(req), 0);
    }

    /// Opens an outgoing RTMP connection in `o.app_ctx` (a relay): the client end of the protocol;
    /// `init` puts the caller's state into `ext` first. The `outgoing` hooks run once the
    /// handshake is done, the `reply` hooks on every answer. Returns the peer, to close it with.
    pub fn connect_out(o: Outgoing, init: impl FnOnce(&mut Ext)) -> Result<Rc<Peer>, String> {
        let srv = o.srv_ctx.srv::<CoreModule>();
        let (conn, _connected) = crate::ngx::conn::connect(&o.addr, o.log)?;
        if !o.internal {
            super::set_nodelay(conn, srv);
        }
        let cfg = SessionConfig {
            max_message: srv.max_message(),
            out_chunk_size: srv.chunk_size(),
            ack_window: srv.ack_window(),
        };
        let mut proto = ClientSession::standalone(cfg);
        proto.start();
        let peer = Rc::new(Peer::new(conn, srv.out_queue()));
        let mut s = Session::with(conn, o.srv_ctx, Proto::Client(Box::new(proto)), peer.clone());
        s.app_ctx = Some(o.app_ctx);
        // Stat pages list a relay as a client of its stream: say what it is.
        peer.set_info(crate::core::peer::PeerInfo {
            flashver: "ngx-rtmp-rs relay".into(),
            page_url: String::new(),
            swf_url: o.what.clone(),
            relay: true,
            internal: o.internal,
        });
        s.relay = Some(o.what);
        s.internal = o.internal;
        s.info = o.info;
        s.connected = true;
        init(&mut s.ext);
        s.drain_output();
        // Until the handshake is done `timeout` covers the connect too.
        conn.read_timer(srv.timeout_ms());
        conn.attach(s);
        if let Some((tls, host)) = &o.tls {
            if let Err(e) = crate::ngx::tls::start_client(conn, tls, host) {
                peer.request_close(e);
            }
        }
        if !conn.handle_read_event() {
            peer.request_close("could not arm the read event".into());
        }
        Ok(peer)
    }

    /// What the server of an outgoing connection says: answers go to the reply hooks; it asks
    /// for nothing (a server sending publish or play to us is ignored).
    pub(super) fn on_reply(&mut self, stream_id: u32, cmd: Command) {
        match cmd {
            Command::Result { .. } | Command::Error { .. } | Command::OnStatus { .. } => {
                for h in &hooks(self.srv_ctx).reply {
                    let s = h(self, stream_id, &cmd);
                    if !self.step(s) {
                        break;
                    }
                }
            }
            Command::Other { name, tid, .. } => {
                log_debug!(self.log, "rtmp: relay: \"{}\" from the server ignored", name);
                if tid != 0.0 {
                    self.send_upstream(0, command::simple_result(tid));
                }
            }
            other => log_debug!(self.log, "rtmp: relay: \"{}\" from the server ignored", other.name()),
        }
    }
}
