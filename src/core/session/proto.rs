//! The protocol end a session plays: the server of an accepted client, or the client of an
//! outgoing connection (a relay); the calls a session makes, on either.

use bytes::BytesMut;
use rtmp_proto::message::Control;
use rtmp_proto::session::{ClientSession, ServerEvent, ServerSession, SessionError};

/// Which end of the protocol a session is.
// Every accepted client is a server end: kept inline, the rare client end is boxed.
#[allow(clippy::large_enum_variant)]
pub enum Proto {
    Server(ServerSession),
    Client(Box<ClientSession>),
}

macro_rules! either {
    ($p:expr, $s:ident => $e:expr) => {
        match $p {
            Proto::Server($s) => $e,
            Proto::Client($s) => $e,
        }
    };
}

impl Proto {
    pub(in crate::core) fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        either!(self, p => p.feed(input))
    }
    pub(in crate::core) fn poll_event(&mut self) -> Option<ServerEvent> {
        either!(self, p => p.poll_event())
    }
    pub fn handshake_done(&self) -> bool {
        either!(self, p => p.handshake_done())
    }
    pub(in crate::core) fn output(&mut self) -> &mut BytesMut {
        either!(self, p => p.output())
    }
    pub(in crate::core) fn ping(&mut self, timestamp: u32) {
        either!(self, p => p.ping(timestamp))
    }
    pub(in crate::core) fn send_control(&mut self, c: &Control) {
        either!(self, p => p.send_control(c))
    }
    pub(in crate::core) fn out_chunk_size(&self) -> u32 {
        either!(self, p => p.out_chunk_size())
    }
    /// Bytes consumed from the peer so far, handshake included.
    pub fn bytes_received(&self) -> u64 {
        either!(self, p => p.bytes_received())
    }
}
