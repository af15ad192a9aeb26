//! A bench player's connection, whichever protocol it plays: RTMP (`rtmp://`) or HTTP-FLV
//! (`http://`); both yield the same `ConnEvent`s, so the bench counts them the same way.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use rtmp_proto::url::RtmpUrl;

use crate::conn::{resolve, ClientSocket, Conn, ConnError, ConnEvent, Role, Stage};
use crate::flvconn::{FlvConn, FlvConnError, FlvUrl};
use crate::CliError;

/// What the players play.
#[derive(Clone, Debug)]
pub enum PlayUrl {
    Rtmp(RtmpUrl),
    Flv(FlvUrl),
}

impl PlayUrl {
    /// `http://…` is HTTP-FLV, anything else must be an RTMP URL.
    pub fn parse(url: &str) -> Result<PlayUrl, CliError> {
        if url.starts_with("http://") {
            return FlvUrl::parse(url).map(PlayUrl::Flv).map_err(CliError::Other);
        }
        Ok(PlayUrl::Rtmp(RtmpUrl::parse(url)?))
    }

    pub fn resolve(&self) -> Result<SocketAddr, ConnError> {
        match self {
            PlayUrl::Rtmp(u) => resolve(u),
            PlayUrl::Flv(u) => u.resolve(),
        }
    }

    /// Stream `i` of `k`: the name with `_i` appended when k > 1.
    pub fn stream(&self, i: usize, k: usize) -> Result<PlayUrl, CliError> {
        if k <= 1 {
            return Ok(self.clone());
        }
        Ok(match self {
            PlayUrl::Rtmp(u) => PlayUrl::Rtmp(crate::bench::stream_url(u, i, k)),
            PlayUrl::Flv(u) => PlayUrl::Flv(u.with_suffix(i).map_err(CliError::Other)?),
        })
    }

    pub fn protocol(&self) -> &'static str {
        match self {
            PlayUrl::Rtmp(_) => "rtmp",
            PlayUrl::Flv(_) => "http-flv",
        }
    }
}

impl fmt::Display for PlayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlayUrl::Rtmp(u) => write!(f, "{u}"),
            PlayUrl::Flv(u) => write!(f, "{u}"),
        }
    }
}

pub enum PlayerConn {
    /// Boxed (both): an RTMP session is kilobytes, an HTTP-FLV connection hundreds of bytes.
    Rtmp(Box<Conn>),
    Flv(Box<FlvConn>),
}

#[derive(Debug)]
pub enum PlayerError {
    Rtmp(ConnError),
    Flv(FlvConnError),
}

impl PlayerError {
    pub fn kind_label(&self) -> String {
        match self {
            PlayerError::Rtmp(e) => e.kind_label(),
            PlayerError::Flv(e) => e.kind_label(),
        }
    }

    /// The server closed a connection that was playing.
    pub fn was_active(&self) -> bool {
        let closed = |e: &ConnError| {
            matches!(
                e,
                ConnError::Closed {
                    stage: Stage::Active
                }
            )
        };
        match self {
            PlayerError::Rtmp(e) | PlayerError::Flv(FlvConnError::Conn(e)) => closed(e),
            PlayerError::Flv(_) => false,
        }
    }
}

impl ClientSocket for PlayerConn {
    fn socket(&mut self) -> &mut TcpStream {
        match self {
            PlayerConn::Rtmp(c) => c.socket(),
            PlayerConn::Flv(c) => c.socket(),
        }
    }
}

impl PlayerConn {
    /// Starts a non-blocking connect; `plain` leaves the socket's options at the OS defaults.
    pub fn connect(addr: SocketAddr, url: &PlayUrl, plain: bool) -> Result<PlayerConn, ConnError> {
        Ok(match url {
            PlayUrl::Rtmp(u) => {
                let mut c = Conn::connect(addr, u, Role::Play)?;
                if plain {
                    c.plain_socket();
                }
                PlayerConn::Rtmp(Box::new(c))
            }
            PlayUrl::Flv(u) => {
                let mut c = FlvConn::connect(addr, u)?;
                if plain {
                    c.plain_socket();
                }
                PlayerConn::Flv(Box::new(c))
            }
        })
    }

    pub fn on_ready(&mut self, scratch: &mut [u8]) -> Result<(), PlayerError> {
        match self {
            PlayerConn::Rtmp(c) => c.on_ready(scratch).map_err(PlayerError::Rtmp),
            PlayerConn::Flv(c) => c.on_ready(scratch).map_err(PlayerError::Flv),
        }
    }

    pub fn next_event(&mut self) -> Option<ConnEvent> {
        match self {
            PlayerConn::Rtmp(c) => c.next_event(),
            PlayerConn::Flv(c) => c.next_event(),
        }
    }

    /// Wire bytes received: all of them for RTMP, the response body's for HTTP-FLV.
    pub fn bytes_received(&self) -> u64 {
        match self {
            PlayerConn::Rtmp(c) => c.bytes_received(),
            PlayerConn::Flv(c) => c.bytes_received(),
        }
    }

    pub fn is_active(&self) -> bool {
        let stage = match self {
            PlayerConn::Rtmp(c) => c.stage(),
            PlayerConn::Flv(c) => c.stage(),
        };
        stage == Stage::Active
    }

    /// HTTP-FLV: when the body's first bytes (the `FLV` signature) arrived.
    pub fn first_byte_at(&self) -> Option<Instant> {
        match self {
            PlayerConn::Rtmp(_) => None,
            PlayerConn::Flv(c) => c.first_byte_at(),
        }
    }

    /// Leaves the stream before the connection closes: RTMP sends deleteStream; an HTTP-FLV
    /// player just closes.
    pub fn leave(&mut self) {
        if let PlayerConn::Rtmp(c) = self {
            let _ = c.delete_stream();
        }
    }
}
