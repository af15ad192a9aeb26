//! RTMP commands (NetConnection / NetStream calls): decoding what clients send, and building the
//! replies a server (or our client) sends.

use bytes::{Bytes, BytesMut};
use std::fmt;

use crate::amf0::{self, Amf0Error, Amf0Value};
use crate::message::msg_type;

type Props = Vec<(String, Amf0Value)>;

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Connect { tid: f64, props: Props, args: Vec<Amf0Value> },
    CreateStream { tid: f64 },
    ReleaseStream { tid: f64, name: String },
    FcPublish { tid: f64, name: String },
    FcUnpublish { tid: f64, name: String },
    /// `kind` is "live", "record" or "append".
    Publish { tid: f64, name: String, kind: String },
    /// `start`: -2 live or recorded, -1 live only, >= 0 recorded from there (ms). `duration` -1: all.
    Play { tid: f64, name: String, start: f64, duration: f64, reset: bool },
    Play2 { tid: f64, params: Props },
    Pause { tid: f64, pause: bool, position_ms: f64 },
    Seek { tid: f64, position_ms: f64 },
    CloseStream { tid: f64 },
    DeleteStream { tid: f64, stream_id: f64 },
    GetStreamLength { tid: f64, name: String },
    ReceiveAudio { flag: bool },
    ReceiveVideo { flag: bool },
    Result { tid: f64, args: Vec<Amf0Value> },
    Error { tid: f64, args: Vec<Amf0Value> },
    OnStatus { info: Props },
    Other { name: String, tid: f64, args: Vec<Amf0Value> },
}

impl Command {
    pub fn name(&self) -> &str {
        match self {
            Command::Connect { .. } => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::Publish { .. } => "publish",
            Command::Play { .. } => "play",
            Command::Play2 { .. } => "play2",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::CloseStream { .. } => "closeStream",
            Command::DeleteStream { .. } => "deleteStream",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::ReceiveAudio { .. } => "receiveAudio",
            Command::ReceiveVideo { .. } => "receiveVideo",
            Command::Result { .. } => "_result",
            Command::Error { .. } => "_error",
            Command::OnStatus { .. } => "onStatus",
            Command::Other { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandError {
    Amf(Amf0Error),
    /// The payload does not start with a command name.
    NoName,
    /// A required argument is missing or of the wrong type.
    BadArgument { command: String, what: &'static str },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Amf(e) => write!(f, "{e}"),
            CommandError::NoName => write!(f, "command without a name"),
            CommandError::BadArgument { command, what } => write!(f, "{command}: bad or missing {what}"),
        }
    }
}

impl std::error::Error for CommandError {}

impl From<Amf0Error> for CommandError {
    fn from(e: Amf0Error) -> Self {
        CommandError::Amf(e)
    }
}

/// Decodes a type 20 (AMF0) or type 17 (AMF3: one format byte, then AMF0 with AVM+ switches)
/// command message.
pub fn decode_command(msg_type: u8, payload: &[u8]) -> Result<Command, CommandError> {
    let body = if msg_type == msg_type::AMF3_COMMAND && !payload.is_empty() { &payload[1..] } else { payload };
    let values = amf0::decode_all(body)?;
    let mut it = values.into_iter();
    let name = match it.next() {
        Some(Amf0Value::String(s)) | Some(Amf0Value::LongString(s)) => s,
        _ => return Err(CommandError::NoName),
    };
    // Some clients omit the transaction id on calls that need no answer.
    let tid = match it.next() {
        Some(Amf0Value::Number(n)) => n,
        _ => 0.0,
    };
    // The command object (usually null) comes next; connect keeps it.
    let object = it.next();
    let rest: Vec<Amf0Value> = it.collect();
    let bad = |what| CommandError::BadArgument { command: name.clone(), what };
    let str_arg = |i: usize| rest.get(i).and_then(Amf0Value::as_str).map(str::to_string);
    let num_arg = |i: usize| rest.get(i).and_then(Amf0Value::as_f64);
    Ok(match name.as_str() {
        "connect" => {
            let props = match object {
                Some(Amf0Value::Object(p)) | Some(Amf0Value::EcmaArray(p)) => p,
                Some(Amf0Value::TypedObject { props, .. }) => props,
                _ => return Err(bad("command object")),
            };
            Command::Connect { tid, props, args: rest }
        }
        "createStream" => Command::CreateStream { tid },
        "releaseStream" => Command::ReleaseStream { tid, name: str_arg(0).unwrap_or_default() },
        "FCPublish" => Command::FcPublish { tid, name: str_arg(0).unwrap_or_default() },
        "FCUnpublish" => Command::FcUnpublish { tid, name: str_arg(0).unwrap_or_default() },
        "publish" => Command::Publish {
            tid,
            name: str_arg(0).ok_or_else(|| bad("stream name"))?,
            kind: str_arg(1).unwrap_or_else(|| "live".to_string()),
        },
        "play" => Command::Play {
            tid,
            name: str_arg(0).ok_or_else(|| bad("stream name"))?,
            start: num_arg(1).unwrap_or(-2.0),
            duration: num_arg(2).unwrap_or(-1.0),
            reset: rest.get(3).and_then(Amf0Value::as_bool).unwrap_or(false),
        },
        "play2" => {
            let params = rest.first().and_then(Amf0Value::properties).ok_or_else(|| bad("parameters"))?.to_vec();
            Command::Play2 { tid, params }
        }
        "pause" | "pauseRaw" => Command::Pause {
            tid,
            pause: rest.first().and_then(Amf0Value::as_bool).unwrap_or(true),
            position_ms: num_arg(1).unwrap_or(0.0),
        },
        "seek" => Command::Seek { tid, position_ms: num_arg(0).unwrap_or(0.0) },
        "closeStream" => Command::CloseStream { tid },
        "deleteStream" => Command::DeleteStream { tid, stream_id: num_arg(0).ok_or_else(|| bad("stream id"))? },
        "getStreamLength" => Command::GetStreamLength { tid, name: str_arg(0).unwrap_or_default() },
        "receiveAudio" => Command::ReceiveAudio { flag: rest.first().and_then(Amf0Value::as_bool).unwrap_or(true) },
        "receiveVideo" => Command::ReceiveVideo { flag: rest.first().and_then(Amf0Value::as_bool).unwrap_or(true) },
        "_result" => Command::Result { tid, args: object.into_iter().chain(rest).collect() },
        "_error" => Command::Error { tid, args: object.into_iter().chain(rest).collect() },
        "onStatus" => Command::OnStatus {
            info: rest.first().and_then(Amf0Value::properties).map(<[_]>::to_vec).unwrap_or_default(),
        },
        _ => Command::Other { name, tid, args: object.into_iter().chain(rest).collect() },
    })
}

/// Decodes a data message (type 18) into its values.
pub fn decode_data(payload: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    amf0::decode_all(payload)
}

/// If `payload` is `@setDataFrame, <name>, ...`, the payload without the `@setDataFrame` string
/// (what players get); `None` otherwise.
pub fn strip_set_data_frame(payload: &Bytes) -> Option<Bytes> {
    const PREFIX: &[u8] = b"\x02\x00\x0d@setDataFrame";
    payload.starts_with(PREFIX).then(|| payload.slice(PREFIX.len()..))
}

/// Splits "name?a=b" into ("name", "a=b").
pub fn split_name_args(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((n, a)) => (n, a),
        None => (s, ""),
    }
}

/// Encodes a command: name, transaction id, then `values` (the command object first).
pub fn encode_command(name: &str, tid: f64, values: &[Amf0Value]) -> Bytes {
    let mut b = BytesMut::with_capacity(128);
    amf0::encode(&Amf0Value::string(name), &mut b);
    amf0::encode(&Amf0Value::Number(tid), &mut b);
    amf0::encode_all(values, &mut b);
    b.freeze()
}

fn status_object(level: &str, code: &str, description: &str) -> Props {
    vec![
        ("level".into(), Amf0Value::string(level)),
        ("code".into(), Amf0Value::string(code)),
        ("description".into(), Amf0Value::string(description)),
    ]
}

/// `_result` for connect, with the properties FMS and nginx-rtmp-module send.
pub fn connect_result(tid: f64, object_encoding: f64) -> Bytes {
    connect_result_with(tid, object_encoding, Vec::new())
}

/// `connect_result` with more server properties (Enhanced RTMP capabilities).
pub fn connect_result_with(tid: f64, object_encoding: f64, extra: Vec<(String, Amf0Value)>) -> Bytes {
    let mut props = vec![
        ("fmsVer".to_string(), Amf0Value::string("FMS/3,0,1,123")),
        ("capabilities".to_string(), Amf0Value::Number(31.0)),
    ];
    props.extend(extra);
    let props = Amf0Value::Object(props);
    let mut info = status_object("status", "NetConnection.Connect.Success", "Connection succeeded.");
    info.push(("objectEncoding".into(), Amf0Value::Number(object_encoding)));
    encode_command("_result", tid, &[props, Amf0Value::Object(info)])
}

/// `_error` with a status object (rejected connect, failed call).
pub fn connect_error(tid: f64, code: &str, description: &str) -> Bytes {
    encode_command("_error", tid, &[Amf0Value::Null, Amf0Value::Object(status_object("error", code, description))])
}

pub fn create_stream_result(tid: f64, stream_id: u32) -> Bytes {
    encode_command("_result", tid, &[Amf0Value::Null, Amf0Value::Number(f64::from(stream_id))])
}

/// `_result` with no value, for calls that need an acknowledgement only.
pub fn simple_result(tid: f64) -> Bytes {
    encode_command("_result", tid, &[Amf0Value::Null, Amf0Value::Undefined])
}

/// `onStatus(null, {level, code, description, details?})`.
pub fn on_status(level: &str, code: &str, description: &str, details: Option<&str>) -> Bytes {
    let mut info = status_object(level, code, description);
    if let Some(d) = details {
        info.push(("details".into(), Amf0Value::string(d)));
    }
    encode_command("onStatus", 0.0, &[Amf0Value::Null, Amf0Value::Object(info)])
}

fn on_fc(name: &str, code: &str, stream: &str) -> Bytes {
    let info = Amf0Value::object([
        ("level", Amf0Value::string("status")),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(stream)),
    ]);
    encode_command(name, 0.0, &[Amf0Value::Null, info])
}

/// The FMS answer to FCPublish.
pub fn on_fc_publish(code: &str, stream: &str) -> Bytes {
    on_fc("onFCPublish", code, stream)
}

/// The FMS answer to FCUnpublish.
pub fn on_fc_unpublish(code: &str, stream: &str) -> Bytes {
    on_fc("onFCUnpublish", code, stream)
}

/// The `|RtmpSampleAccess` data message that lets Flash players read the media.
pub fn sample_access() -> Bytes {
    let mut b = BytesMut::new();
    amf0::encode_all(
        &[Amf0Value::string("|RtmpSampleAccess"), Amf0Value::Boolean(true), Amf0Value::Boolean(true)],
        &mut b,
    );
    b.freeze()
}

pub fn stream_length_result(tid: f64, seconds: f64) -> Bytes {
    encode_command("_result", tid, &[Amf0Value::Null, Amf0Value::Number(seconds)])
}

/// Client side: `connect` with the usual properties.
pub fn connect(tid: f64, app: &str, tc_url: &str) -> Bytes {
    connect_with(tid, app, tc_url, Vec::new())
}

/// `connect` with more properties (Enhanced RTMP `fourCcList`, see `caps::client_props`).
pub fn connect_with(tid: f64, app: &str, tc_url: &str, extra: Vec<(String, Amf0Value)>) -> Bytes {
    let mut props = vec![
        ("app", Amf0Value::string(app)),
        ("type", Amf0Value::string("nonprivate")),
        ("flashVer", Amf0Value::string("FMLE/3.0 (compatible; ngx-rtmp-rs)")),
        ("tcUrl", Amf0Value::string(tc_url)),
        ("fpad", Amf0Value::Boolean(false)),
        ("capabilities", Amf0Value::Number(15.0)),
        ("audioCodecs", Amf0Value::Number(4071.0)),
        ("videoCodecs", Amf0Value::Number(252.0)),
        ("videoFunction", Amf0Value::Number(1.0)),
        ("objectEncoding", Amf0Value::Number(0.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect::<Vec<_>>();
    // A property given again (a relay's flashVer, pageUrl…) replaces the default.
    for (k, v) in extra {
        match props.iter_mut().find(|(n, _)| *n == k) {
            Some(p) => p.1 = v,
            None => props.push((k, v)),
        }
    }
    encode_command("connect", tid, &[Amf0Value::Object(props)])
}

pub fn create_stream(tid: f64) -> Bytes {
    encode_command("createStream", tid, &[Amf0Value::Null])
}

pub fn publish(tid: f64, name: &str, kind: &str) -> Bytes {
    encode_command("publish", tid, &[Amf0Value::Null, Amf0Value::string(name), Amf0Value::string(kind)])
}

pub fn play(tid: f64, name: &str, start: f64) -> Bytes {
    encode_command("play", tid, &[Amf0Value::Null, Amf0Value::string(name), Amf0Value::Number(start)])
}

/// `play` with a start and a duration (relays: `live=`, `start=`, `stop=`).
pub fn play_range(tid: f64, name: &str, start: f64, duration: f64) -> Bytes {
    encode_command(
        "play",
        tid,
        &[Amf0Value::Null, Amf0Value::string(name), Amf0Value::Number(start), Amf0Value::Number(duration)],
    )
}

pub fn delete_stream(tid: f64, stream_id: u32) -> Bytes {
    encode_command("deleteStream", tid, &[Amf0Value::Null, Amf0Value::Number(f64::from(stream_id))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_builders_decode() {
        let c = decode_command(msg_type::AMF0_COMMAND, &connect(1.0, "live", "rtmp://h/live")).unwrap();
        let Command::Connect { tid, props, .. } = c else { panic!("{c:?}") };
        assert_eq!(tid, 1.0);
        assert_eq!(props[0], ("app".to_string(), Amf0Value::string("live")));
        assert_eq!(
            decode_command(msg_type::AMF0_COMMAND, &publish(5.0, "s?k=1", "live")).unwrap(),
            Command::Publish { tid: 5.0, name: "s?k=1".into(), kind: "live".into() }
        );
        assert_eq!(
            decode_command(msg_type::AMF0_COMMAND, &play(4.0, "s", -2.0)).unwrap(),
            Command::Play { tid: 4.0, name: "s".into(), start: -2.0, duration: -1.0, reset: false }
        );
        assert_eq!(
            decode_command(msg_type::AMF0_COMMAND, &delete_stream(6.0, 1)).unwrap(),
            Command::DeleteStream { tid: 6.0, stream_id: 1.0 }
        );
    }

    #[test]
    fn amf3_command_skips_format_byte() {
        let mut p = vec![0u8];
        p.extend_from_slice(&create_stream(2.0));
        assert_eq!(decode_command(msg_type::AMF3_COMMAND, &p).unwrap(), Command::CreateStream { tid: 2.0 });
    }

    #[test]
    fn amf3_connect_object_behind_avmplus() {
        let mut p = vec![0u8, 0x02, 0, 7];
        p.extend_from_slice(b"connect");
        p.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01, 0x07, b'a', b'p', b'p', 0x06, 0x05, b'l', b'v', 0x01]);
        let Command::Connect { props, .. } = decode_command(msg_type::AMF3_COMMAND, &p).unwrap() else {
            panic!()
        };
        assert_eq!(props, vec![("app".to_string(), Amf0Value::string("lv"))]);
    }

    #[test]
    fn replies_decode() {
        let r = decode_command(msg_type::AMF0_COMMAND, &connect_result(1.0, 3.0)).unwrap();
        let Command::Result { args, .. } = r else { panic!() };
        assert_eq!(args[1].get("code").and_then(Amf0Value::as_str), Some("NetConnection.Connect.Success"));
        assert_eq!(args[1].get("objectEncoding").and_then(Amf0Value::as_f64), Some(3.0));
        let s = decode_command(msg_type::AMF0_COMMAND, &on_status("status", "NetStream.Play.Start", "x", None)).unwrap();
        let Command::OnStatus { info } = s else { panic!() };
        assert_eq!(info[1].1, Amf0Value::string("NetStream.Play.Start"));
    }

    #[test]
    fn bad_commands() {
        assert_eq!(decode_command(20, &[]), Err(CommandError::NoName));
        assert!(matches!(decode_command(20, &[0x02, 0x00]), Err(CommandError::Amf(_))));
        let p = encode_command("connect", 1.0, &[Amf0Value::Null]);
        assert!(matches!(decode_command(20, &p), Err(CommandError::BadArgument { .. })));
        let p = encode_command("publish", 1.0, &[Amf0Value::Null]);
        assert!(matches!(decode_command(20, &p), Err(CommandError::BadArgument { .. })));
    }

    #[test]
    fn set_data_frame() {
        let mut b = BytesMut::new();
        amf0::encode_all(&[Amf0Value::string("@setDataFrame"), Amf0Value::string("onMetaData")], &mut b);
        let b = b.freeze();
        let s = strip_set_data_frame(&b).unwrap();
        assert_eq!(decode_data(&s).unwrap(), vec![Amf0Value::string("onMetaData")]);
        assert!(strip_set_data_frame(&s).is_none());
    }

    #[test]
    fn names_and_args() {
        assert_eq!(split_name_args("a?b=1&c"), ("a", "b=1&c"));
        assert_eq!(split_name_args("a"), ("a", ""));
    }

    proptest! {
        #[test]
        fn never_panics(t in prop::sample::select(vec![17u8, 20]), b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_command(t, &b);
        }
    }
}
