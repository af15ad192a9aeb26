//! Typed event hooks: each feature module registers its handlers in postconfiguration, in module
//! order, like nginx-rtmp-module's `next_publish` chains but without untyped globals.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use rtmp_proto::RawMessage;

use super::peer::Peer;
use super::session::Session;

/// What a hook tells the chain.
pub enum Step {
    /// Let the next module see the event.
    Continue,
    /// Handled; later modules do not see it.
    Stop,
    /// Refuse: the reason is logged at info and the client is closed.
    Close(String),
    /// The answer comes later (an HTTP callback): the request waits, and so does everything the
    /// client sends meanwhile; `Waiter::finish` resumes the chain after this hook.
    Wait(Waiter),
    /// A play goes on, and a relay is bringing its stream in: the player waits for it even
    /// where a stream nobody publishes is refused at once (HTTP players).
    Incoming,
}

/// How a waiting hook's answer resumes its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Go on with the next hook.
    Continue,
    /// Go on under another stream name (a notify redirect); publish and play only.
    Rename(String),
    /// Refuse: logged at info, the client is closed (the hook sends its own status first).
    Close(String),
    /// Go on, relaying the stream to (publish) or from (play) an `rtmp://` URL, under another
    /// local name if given (a notify redirect to `rtmp://`); the relay module acts on it.
    Relay { url: String, name: Option<String> },
}

/// The handle a hook returns in `Step::Wait` and keeps to answer later.
#[derive(Clone)]
pub struct Waiter(Rc<WaitState>);

struct WaitState {
    result: RefCell<Option<Resume>>,
    peer: Weak<Peer>,
}

impl Waiter {
    pub fn new(s: &Session) -> Waiter {
        Waiter(Rc::new(WaitState { result: RefCell::new(None), peer: Rc::downgrade(&s.peer) }))
    }

    /// Answers once (later answers are ignored) and wakes the session.
    pub fn finish(&self, r: Resume) {
        {
            let mut slot = self.0.result.borrow_mut();
            if slot.is_some() {
                return;
            }
            *slot = Some(r);
        }
        if let Some(p) = self.0.peer.upgrade() {
            p.wake();
        }
    }

    pub(super) fn take(&self) -> Option<Resume> {
        self.0.result.borrow_mut().take()
    }
}

/// A `publish` request after core validated it.
#[derive(Debug, Clone)]
pub struct PublishReq {
    pub stream_id: u32,
    pub tid: f64,
    /// Stream name without the query string.
    pub name: String,
    /// The query string after '?', if any.
    pub args: String,
    /// live, record or append.
    pub kind: String,
    /// An `rtmp://` URL to push this stream to as well (set by a redirect).
    pub relay: Option<String>,
}

/// A `play` request after core validated it.
#[derive(Debug, Clone)]
pub struct PlayReq {
    pub stream_id: u32,
    pub tid: f64,
    pub name: String,
    pub args: String,
    pub start: f64,
    pub duration: f64,
    pub reset: bool,
    /// An `rtmp://` URL to pull this stream from (set by a redirect).
    pub relay: Option<String>,
    /// A relay brings the stream in (`Step::Incoming`).
    pub incoming: bool,
}

impl PlayReq {
    /// A play of `name`, whose `?args` part (if any) goes to `args`.
    pub fn new(stream_id: u32, tid: f64, name: &str, start: f64, duration: f64, reset: bool) -> Self {
        let (n, a) = rtmp_proto::command::split_name_args(name);
        PlayReq {
            stream_id,
            tid,
            name: n.to_string(),
            args: a.to_string(),
            start,
            duration,
            reset,
            relay: None,
            incoming: false,
        }
    }
}

/// A recorder closed a file (the record module): notify (`on_record_done`) and exec
/// (`exec_record_done`) act on it.
#[derive(Debug, Clone)]
pub struct RecordDone {
    /// The recorder's name ("" for the application's own `record`).
    pub recorder: String,
    /// The file's full path.
    pub path: String,
    /// The stream name and the publish arguments.
    pub name: String,
    pub args: String,
    /// The recorder's configuration context (its `recorder {}` block, or the application):
    /// `on_record_done` and `exec_record_done` are read from it.
    pub conf: crate::ngx::module::CtxRef,
}

pub type ConnectHook = fn(&mut Session) -> Step;
pub type PublishHook = fn(&mut Session, &PublishReq) -> Step;
pub type PlayHook = fn(&mut Session, &PlayReq) -> Step;
pub type MediaHook = fn(&mut Session, &RawMessage) -> Step;
pub type StreamHook = fn(&mut Session, u32) -> Step;
pub type PauseHook = fn(&mut Session, u32, bool) -> Step;
/// `seek` (stream id, position in ms).
pub type SeekHook = fn(&mut Session, u32, f64) -> Step;
pub type ReceiveHook = fn(&mut Session, u32, bool, bool) -> Step;
pub type DisconnectHook = fn(&mut Session);
pub type RecordDoneHook = fn(&mut Session, &RecordDone);
/// The control API starts (true) or stops a recorder of this session.
pub type RecordControlHook = fn(&mut Session, &str, bool);
/// `_result`, `_error` and `onStatus` the server of an outgoing connection sent (stream id, command).
pub type ReplyHook = fn(&mut Session, u32, &rtmp_proto::command::Command) -> Step;

/// The ordered handler lists, kept in the core main conf.
#[derive(Default)]
pub struct Hooks {
    /// After a successful `connect` to an application, before it is answered.
    pub connect: Vec<ConnectHook>,
    pub publish: Vec<PublishHook>,
    /// After a module accepted a publish (NetStream.Publish.Start sent): recorders such as HLS
    /// start here, so a refused publisher never touches their output.
    pub published: Vec<PublishHook>,
    pub play: Vec<PlayHook>,
    /// No module took a play (an RTMP client): a module that knows why (VOD found no file)
    /// answers the client; `Close` refuses it.
    pub play_unhandled: Vec<PlayHook>,
    /// Audio, video and data messages of a publishing stream.
    pub media: Vec<MediaHook>,
    /// closeStream / deleteStream / FCUnpublish: the stream id stops publishing or playing.
    pub close_stream: Vec<StreamHook>,
    pub pause: Vec<PauseHook>,
    /// `seek` on a stream id (recorded files; live streams ignore it).
    pub seek: Vec<SeekHook>,
    /// receiveAudio / receiveVideo: (stream id, is_video, flag).
    pub receive: Vec<ReceiveHook>,
    pub disconnect: Vec<DisconnectHook>,
    /// A recorder of this session's stream closed a file.
    pub record_done: Vec<RecordDoneHook>,
    pub record_control: Vec<RecordControlHook>,
    /// An outgoing connection (a relay) finished its handshake: time to send `connect`.
    pub outgoing: Vec<ConnectHook>,
    /// Answers from the server of an outgoing connection.
    pub reply: Vec<ReplyHook>,
}
