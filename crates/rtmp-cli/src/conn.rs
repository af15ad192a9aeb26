//! One non-blocking client connection over `ClientSession`: TCP connect → handshake → connect →
//! createStream → publish or play, then media; plus `Single`, a blocking driver for one connection.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use rtmp_proto::caps;
use rtmp_proto::client::{self, ClientFlow, Outcome};
use rtmp_proto::command::{self, Command};
use rtmp_proto::message::{Control, RawMessage, UserControl};
use rtmp_proto::session::{ClientSession, SessionConfig, SessionError, SessionEvent};

use rtmp_proto::url::RtmpUrl;

/// What the connection is for.
pub use rtmp_proto::client::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Tcp,
    Handshake,
    Connect,
    CreateStream,
    /// publish / play sent, waiting for its `onStatus`.
    Start,
    /// Publishing or playing.
    Active,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Tcp => "TCP connect",
            Stage::Handshake => "handshake",
            Stage::Connect => "connect",
            Stage::CreateStream => "createStream",
            Stage::Start => "publish/play",
            Stage::Active => "streaming",
        }
    }
}

/// The buffer length players announce, as FFmpeg does (ms).
const PLAY_BUFFER_MS: u32 = 3000;
const OUT_CHUNK_SIZE: u32 = 4096;
const EMFILE: i32 = 24;

#[derive(Debug)]
pub enum ConnError {
    Resolve {
        addr: String,
        source: Option<io::Error>,
    },
    /// Creating the socket or connecting it failed.
    Connect {
        addr: SocketAddr,
        source: io::Error,
    },
    Io {
        addr: SocketAddr,
        source: io::Error,
    },
    Session(SessionError),
    /// The server answered a call with an error (`_error` or an error `onStatus`).
    Rejected {
        what: &'static str,
        code: String,
        description: String,
    },
    /// The server closed the connection.
    Closed {
        stage: Stage,
    },
    Timeout {
        stage: Stage,
    },
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Resolve {
                addr,
                source: Some(e),
            } => write!(f, "cannot resolve {addr}: {e}"),
            ConnError::Resolve { addr, source: None } => {
                write!(f, "cannot resolve {addr}: no addresses")
            }
            ConnError::Connect { addr, source } => match source.kind() {
                io::ErrorKind::ConnectionRefused => write!(f, "connection refused to {addr}"),
                io::ErrorKind::TimedOut => write!(f, "connection to {addr} timed out"),
                _ if source.raw_os_error() == Some(EMFILE) => {
                    write!(f, "cannot open a socket to {addr}: too many open files (EMFILE; raise `ulimit -n`)")
                }
                _ => write!(f, "cannot connect to {addr}: {source}"),
            },
            ConnError::Io { addr, source } => write!(f, "connection to {addr}: {source}"),
            ConnError::Session(e) => write!(f, "protocol error: {e}"),
            ConnError::Rejected {
                what,
                code,
                description,
            } => {
                write!(f, "server rejected {what}: {code}")?;
                if !description.is_empty() {
                    write!(f, " ({description})")?;
                }
                Ok(())
            }
            ConnError::Closed {
                stage: Stage::Active,
            } => f.write_str("server closed the connection"),
            ConnError::Closed { stage } => {
                write!(f, "server closed the connection during {}", stage.name())
            }
            ConnError::Timeout { stage } => write!(f, "timed out during {}", stage.name()),
        }
    }
}

impl std::error::Error for ConnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnError::Resolve {
                source: Some(e), ..
            }
            | ConnError::Connect { source: e, .. }
            | ConnError::Io { source: e, .. } => Some(e),
            ConnError::Session(e) => Some(e),
            _ => None,
        }
    }
}

impl ConnError {
    /// A short label for grouping failures in bench reports.
    pub fn kind_label(&self) -> String {
        match self {
            ConnError::Connect { source, .. } if source.raw_os_error() == Some(EMFILE) => {
                "EMFILE".into()
            }
            ConnError::Connect { source, .. } => format!("connect: {:?}", source.kind()),
            ConnError::Io { source, .. } => format!("io: {:?}", source.kind()),
            ConnError::Rejected { code, .. } => format!("rejected: {code}"),
            other => other.to_string(),
        }
    }
}

/// The first address `url` resolves to.
pub fn resolve(url: &RtmpUrl) -> Result<SocketAddr, ConnError> {
    let addr = url.authority();
    let mut it = addr.to_socket_addrs().map_err(|e| ConnError::Resolve {
        addr: addr.clone(),
        source: Some(e),
    })?;
    it.next().ok_or(ConnError::Resolve { addr, source: None })
}

/// What the caller hears about.
#[derive(Debug)]
pub enum ConnEvent {
    /// `NetStream.Publish.Start` / `NetStream.Play.Start`.
    Started,
    /// Audio, video or data (type 18) from the server.
    Media(RawMessage),
    /// An informational `onStatus` (e.g. `NetStream.Play.UnpublishNotify`).
    Status(String),
}

pub struct Conn {
    sock: TcpStream,
    addr: SocketAddr,
    session: ClientSession,
    inbuf: BytesMut,
    role: Role,
    /// connect → createStream → publish/play.
    flow: ClientFlow,
    stage: Stage,
    events: VecDeque<ConnEvent>,
    /// Enhanced RTMP video FourCCs announced in `connect`.
    fourcc: Vec<String>,
    /// TCP_NODELAY once connected (off: the socket keeps the OS defaults, as most players do).
    nodelay: bool,
}

/// The non-blocking TCP socket under a client connection (RTMP `Conn` or HTTP-FLV `FlvConn`):
/// registering it with mio for both kinds of readiness.
pub trait ClientSocket {
    fn socket(&mut self) -> &mut TcpStream;

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            self.socket(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(self.socket())
    }
}

/// Whether the non-blocking connect of `sock` to `addr` has finished (`Ok(false)`: not yet);
/// once it has, sets TCP_NODELAY if `nodelay`.
pub fn finish_connect(sock: &TcpStream, addr: SocketAddr, nodelay: bool) -> Result<bool, ConnError> {
    if let Some(e) = sock
        .take_error()
        .map_err(|source| ConnError::Connect { addr, source })?
    {
        return Err(ConnError::Connect { addr, source: e });
    }
    match sock.peer_addr() {
        Ok(_) => {
            if nodelay {
                let _ = sock.set_nodelay(true);
            }
            Ok(true)
        }
        Err(e)
            if e.kind() == io::ErrorKind::NotConnected || e.kind() == io::ErrorKind::WouldBlock =>
        {
            Ok(false)
        }
        Err(source) => Err(ConnError::Connect { addr, source }),
    }
}

impl ClientSocket for Conn {
    fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }
}

impl Conn {
    /// Starts a non-blocking connect; nothing is sent before the socket is registered and ready.
    pub fn connect(addr: SocketAddr, url: &RtmpUrl, role: Role) -> Result<Conn, ConnError> {
        let sock =
            TcpStream::connect(addr).map_err(|source| ConnError::Connect { addr, source })?;
        let mut session = ClientSession::new(SessionConfig::default());
        session.start();
        Ok(Conn {
            sock,
            addr,
            session,
            inbuf: BytesMut::with_capacity(16 * 1024),
            role,
            flow: ClientFlow::new(role, url, Vec::new()),
            stage: Stage::Tcp,
            events: VecDeque::new(),
            fourcc: Vec::new(),
            nodelay: true,
        })
    }

    /// Leaves the socket's options at the OS defaults (Nagle on), as FFmpeg, OBS and browsers
    /// do, instead of setting TCP_NODELAY.
    pub fn plain_socket(&mut self) {
        self.nodelay = false;
    }

    /// Announces Enhanced RTMP support for these video FourCCs (e.g. "hvc1") in `connect`.
    pub fn announce_fourcc(&mut self, list: &[String]) {
        self.fourcc = list.to_vec();
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn stream_id(&self) -> u32 {
        self.flow.stream_id()
    }

    pub fn bytes_received(&self) -> u64 {
        self.session.bytes_received()
    }

    pub fn next_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// Queues a media message on the publishing stream and tries to write it.
    pub fn send_media(&mut self, csid: u32, msg: &RawMessage) -> Result<(), ConnError> {
        self.session.send_message(csid, msg);
        self.flush()
    }

    /// Asks the server to drop the stream (sent before a clean exit).
    pub fn delete_stream(&mut self) -> Result<(), ConnError> {
        if self.flow.stream_id() != 0 {
            self.session
                .send_command(0, command::delete_stream(0.0, self.flow.stream_id()));
        }
        self.flush()
    }

    /// Handles readiness: finishes the TCP connect, reads everything available, runs the session
    /// and writes what it produced. `scratch` is a shared read buffer.
    pub fn on_ready(&mut self, scratch: &mut [u8]) -> Result<(), ConnError> {
        if self.stage == Stage::Tcp {
            if !finish_connect(&self.sock, self.addr, self.nodelay)? {
                return Ok(());
            }
            self.stage = Stage::Handshake;
        }
        self.read_all(scratch)?;
        self.flush()
    }

    fn read_all(&mut self, scratch: &mut [u8]) -> Result<(), ConnError> {
        loop {
            match self.sock.read(scratch) {
                Ok(0) => return Err(ConnError::Closed { stage: self.stage }),
                Ok(n) => {
                    self.inbuf
                        .extend_from_slice(scratch.get(..n).unwrap_or_default());
                    self.session
                        .feed(&mut self.inbuf)
                        .map_err(ConnError::Session)?;
                    self.process_events()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(self.io_error(source)),
            }
        }
    }

    fn io_error(&self, source: io::Error) -> ConnError {
        if self.stage == Stage::Tcp {
            ConnError::Connect {
                addr: self.addr,
                source,
            }
        } else {
            ConnError::Io {
                addr: self.addr,
                source,
            }
        }
    }

    /// Writes queued output until done or the socket is full.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        if self.stage == Stage::Tcp {
            return Ok(());
        }
        loop {
            let out = self.session.output();
            if out.is_empty() {
                return Ok(());
            }
            match self.sock.write(&out[..]) {
                Ok(0) => return Err(ConnError::Closed { stage: self.stage }),
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(self.io_error(source)),
            }
        }
    }

    fn process_events(&mut self) -> Result<(), ConnError> {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::HandshakeDone => {
                    self.session
                        .send_control(&Control::SetChunkSize(OUT_CHUNK_SIZE));
                    let list: Vec<&str> = self.fourcc.iter().map(String::as_str).collect();
                    self.flow.add_props(caps::client_props(&list));
                    let connect = self.flow.connect();
                    self.session.send_command(0, connect);
                    self.stage = Stage::Connect;
                }
                SessionEvent::Command { command, .. } => self.on_command(command)?,
                SessionEvent::Media(m) => self.events.push_back(ConnEvent::Media(m)),
                SessionEvent::BadCommand { .. } | SessionEvent::Control(_) => {}
            }
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) -> Result<(), ConnError> {
        match self.flow.on_command(&cmd) {
            Outcome::Send { stream_id, payload } => {
                self.session.send_command(stream_id, payload);
                if self.flow.stage() == client::Stage::Start {
                    self.stage = Stage::Start;
                    if self.role == Role::Play {
                        let buffer = UserControl::SetBufferLength {
                            stream_id,
                            ms: PLAY_BUFFER_MS,
                        };
                        self.session.send_control(&Control::UserControl(buffer));
                    }
                } else {
                    self.stage = Stage::CreateStream;
                }
            }
            Outcome::Started { .. } => {
                self.stage = Stage::Active;
                self.events.push_back(ConnEvent::Started);
            }
            Outcome::Rejected {
                what,
                code,
                description,
            } => {
                return Err(ConnError::Rejected {
                    what,
                    code,
                    description,
                })
            }
            Outcome::Status { code } => self.events.push_back(ConnEvent::Status(code)),
            Outcome::Nothing => {}
        }
        Ok(())
    }
}

/// One connection driven by its own poll loop, for the single-connection commands.
pub struct Single {
    poll: Poll,
    events: Events,
    scratch: Vec<u8>,
    pub conn: Conn,
}

const SINGLE: Token = Token(0);

impl Single {
    pub fn open(url: &RtmpUrl, role: Role) -> Result<Single, ConnError> {
        let addr = resolve(url)?;
        let poll = Poll::new().map_err(|source| ConnError::Connect { addr, source })?;
        let mut conn = Conn::connect(addr, url, role)?;
        conn.register(poll.registry(), SINGLE)
            .map_err(|source| ConnError::Connect { addr, source })?;
        Ok(Single {
            poll,
            events: Events::with_capacity(16),
            scratch: vec![0u8; 64 * 1024],
            conn,
        })
    }

    /// The next event, or `None` once `deadline` passes without one.
    pub fn wait_event(&mut self, deadline: Instant) -> Result<Option<ConnEvent>, ConnError> {
        loop {
            if let Some(e) = self.conn.next_event() {
                return Ok(Some(e));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.poll_once(deadline - now)?;
        }
    }

    /// Waits for `Started`; other events before it are dropped (nothing useful comes first).
    pub fn wait_started(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.wait_event(deadline)? {
                Some(ConnEvent::Started) => return Ok(()),
                Some(_) => {}
                None => {
                    return Err(ConnError::Timeout {
                        stage: self.conn.stage(),
                    })
                }
            }
        }
    }

    /// Waits until all queued output is written or `deadline` passes.
    pub fn drain_output(&mut self, deadline: Instant) -> Result<(), ConnError> {
        self.conn.flush()?;
        while self.conn.has_pending_out() {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            self.poll_once(deadline - now)?;
        }
        Ok(())
    }

    pub fn poll_once(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let addr = self.conn.addr;
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(source) => return Err(ConnError::Io { addr, source }),
        }
        if !self.events.is_empty() {
            self.conn.on_ready(&mut self.scratch)?;
        }
        Ok(())
    }
}

impl Conn {
    /// `output()` needs `&mut`, hence these take it too.
    pub fn has_pending_out(&mut self) -> bool {
        !self.session.output().is_empty()
    }

    /// Bytes queued but not yet accepted by the socket.
    pub fn pending_out_len(&mut self) -> usize {
        self.session.output().len()
    }
}
