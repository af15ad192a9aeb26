//! A client's command exchange once its handshake is done: `connect`, `createStream`, then
//! `publish` or `play`, and what the server's answers mean. Sans-IO: it returns the commands to
//! send and what happened; our CLI and the module's relays both drive it over a `ClientSession`.

use bytes::Bytes;

use crate::amf0::Amf0Value;
use crate::command::{self, Command};
use crate::url::RtmpUrl;

/// Transaction ids of the three calls.
pub const TID_CONNECT: f64 = 1.0;
pub const TID_CREATE_STREAM: f64 = 2.0;
pub const TID_START: f64 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Publish,
    Play,
}

impl Role {
    pub fn verb(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Play => "play",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before `connect` went out.
    Handshake,
    Connect,
    CreateStream,
    /// publish / play sent, waiting for its `onStatus`.
    Start,
    /// Publishing or playing.
    Active,
}

/// What a server's command meant.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Send this command on this message stream.
    Send { stream_id: u32, payload: Bytes },
    /// The server accepted the publish or play on `stream_id`.
    Started { stream_id: u32 },
    /// The server refused `what` (connect, createStream, publish or play).
    Rejected { what: &'static str, code: String, description: String },
    /// Any other status of the stream (UnpublishNotify, Play.Reset…).
    Status { code: String },
    /// Nothing to do.
    Nothing,
}

#[derive(Clone, Debug)]
pub struct ClientFlow {
    role: Role,
    url: RtmpUrl,
    /// More `connect` properties (Enhanced RTMP codecs, see `caps::client_props`).
    extra: Vec<(String, Amf0Value)>,
    stage: Stage,
    stream_id: u32,
    /// tcUrl sent in `connect` (default: the URL's).
    tc_url: Option<String>,
    /// `play` start and duration (default: start -2, no duration).
    play_range: Option<(f64, f64)>,
}

impl ClientFlow {
    pub fn new(role: Role, url: &RtmpUrl, extra: Vec<(String, Amf0Value)>) -> Self {
        ClientFlow {
            role,
            url: url.clone(),
            extra,
            stage: Stage::Handshake,
            stream_id: 0,
            tc_url: None,
            play_range: None,
        }
    }

    /// Another tcUrl than the URL's (a relay's `tcUrl=`).
    pub fn with_tc_url(mut self, tc_url: String) -> Self {
        self.tc_url = Some(tc_url);
        self
    }

    /// `play` with this start and duration (a relay's `live=`, `start=`, `stop=`).
    pub fn with_play_range(mut self, start: f64, duration: f64) -> Self {
        self.play_range = Some((start, duration));
        self
    }

    /// More `connect` properties (before `connect`).
    pub fn add_props(&mut self, props: Vec<(String, Amf0Value)>) {
        self.extra.extend(props);
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The stream id `createStream` gave (0 before).
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The `connect` command, to send on stream 0 once the handshake is done.
    pub fn connect(&mut self) -> Bytes {
        self.stage = Stage::Connect;
        let tc_url = self.tc_url.clone().unwrap_or_else(|| self.url.tc_url());
        command::connect_with(TID_CONNECT, &self.url.app, &tc_url, std::mem::take(&mut self.extra))
    }

    /// What a command of the server means for the exchange.
    pub fn on_command(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Result { tid, .. } if *tid == TID_CONNECT && self.stage == Stage::Connect => {
                self.stage = Stage::CreateStream;
                Outcome::Send { stream_id: 0, payload: command::create_stream(TID_CREATE_STREAM) }
            }
            Command::Result { tid, args } if *tid == TID_CREATE_STREAM && self.stage == Stage::CreateStream => {
                let id = args.iter().find_map(Amf0Value::as_f64).unwrap_or(1.0);
                self.stream_id = if (1.0..=f64::from(u32::MAX)).contains(&id) { id as u32 } else { 1 };
                self.stage = Stage::Start;
                let payload = match self.role {
                    Role::Publish => command::publish(TID_START, &self.url.name, "live"),
                    Role::Play => match self.play_range {
                        Some((start, duration)) => command::play_range(TID_START, &self.url.name, start, duration),
                        None => command::play(TID_START, &self.url.name, -2.0),
                    },
                };
                Outcome::Send { stream_id: self.stream_id, payload }
            }
            Command::Error { tid, args } => {
                let what = match *tid {
                    t if t == TID_CONNECT => "connect",
                    t if t == TID_CREATE_STREAM => "createStream",
                    _ => self.role.verb(),
                };
                let info = args.iter().find(|a| a.properties().is_some());
                rejected(what, info)
            }
            Command::OnStatus { info } => {
                let obj = Amf0Value::Object(info.clone());
                let code = obj.get("code").and_then(Amf0Value::as_str).unwrap_or("").to_string();
                let level = obj.get("level").and_then(Amf0Value::as_str).unwrap_or("");
                let start = match self.role {
                    Role::Publish => "NetStream.Publish.Start",
                    Role::Play => "NetStream.Play.Start",
                };
                if code == start && self.stage == Stage::Start {
                    self.stage = Stage::Active;
                    Outcome::Started { stream_id: self.stream_id }
                } else if level == "error" || code.ends_with(".BadName") || code.ends_with(".StreamNotFound") {
                    rejected(self.role.verb(), Some(&obj))
                } else {
                    Outcome::Status { code }
                }
            }
            _ => Outcome::Nothing,
        }
    }
}

fn rejected(what: &'static str, info: Option<&Amf0Value>) -> Outcome {
    let field = |k| info.and_then(|i| i.get(k)).and_then(Amf0Value::as_str).unwrap_or("").to_string();
    let code = field("code");
    Outcome::Rejected {
        what,
        code: if code.is_empty() { "(no code)".into() } else { code },
        description: field("description"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::decode_command;
    use crate::message::msg_type;

    fn decode(b: &Bytes) -> Command {
        decode_command(msg_type::AMF0_COMMAND, b).unwrap()
    }

    fn status(level: &str, code: &str) -> Command {
        decode(&command::on_status(level, code, "why", None))
    }

    #[test]
    fn publish_exchange() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/cam").unwrap();
        let mut f = ClientFlow::new(Role::Publish, &url, Vec::new());
        assert!(matches!(decode(&f.connect()), Command::Connect { tid, .. } if tid == TID_CONNECT));
        // Answers out of turn change nothing.
        assert_eq!(f.on_command(&decode(&command::create_stream_result(TID_CREATE_STREAM, 5))), Outcome::Nothing);
        let Outcome::Send { stream_id: 0, payload } = f.on_command(&decode(&command::simple_result(TID_CONNECT)))
        else {
            panic!("createStream expected")
        };
        assert!(matches!(decode(&payload), Command::CreateStream { .. }));
        let Outcome::Send { stream_id: 5, payload } =
            f.on_command(&decode(&command::create_stream_result(TID_CREATE_STREAM, 5)))
        else {
            panic!("publish expected")
        };
        assert!(matches!(decode(&payload), Command::Publish { name, .. } if name == "cam"));
        assert_eq!(
            f.on_command(&status("status", "NetStream.Play.Start")),
            Outcome::Status { code: "NetStream.Play.Start".into() }
        );
        assert_eq!(f.on_command(&status("status", "NetStream.Publish.Start")), Outcome::Started { stream_id: 5 });
        assert_eq!(f.stage(), Stage::Active);
    }

    #[test]
    fn refusals() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/cam?k=v").unwrap();
        let mut f = ClientFlow::new(Role::Play, &url, Vec::new());
        f.connect();
        let err = command::connect_error(TID_CONNECT, "NetConnection.Connect.Rejected", "Application not found");
        assert_eq!(
            f.on_command(&decode(&err)),
            Outcome::Rejected {
                what: "connect",
                code: "NetConnection.Connect.Rejected".into(),
                description: "Application not found".into()
            }
        );
        let r = f.on_command(&status("status", "NetStream.Play.StreamNotFound"));
        assert!(matches!(r, Outcome::Rejected { what: "play", .. }));
        // A bad stream id from the server falls back to 1.
        let mut f = ClientFlow::new(Role::Play, &url, Vec::new());
        f.connect();
        f.on_command(&decode(&command::simple_result(TID_CONNECT)));
        let bad =
            decode(&command::encode_command("_result", TID_CREATE_STREAM, &[Amf0Value::Null, Amf0Value::Number(-3.0)]));
        let Outcome::Send { stream_id: 1, payload } = f.on_command(&bad) else { panic!("play expected") };
        assert!(matches!(decode(&payload), Command::Play { name, .. } if name == "cam?k=v"));
    }
}
