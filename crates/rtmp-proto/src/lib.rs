//! Sans-IO RTMP: every protocol rule of the module lives here, fed with bytes and returning bytes and
//! events, so the nginx module, the client CLI and the tests share one implementation.
#![forbid(unsafe_code)]

pub mod amf0;
pub mod amf3;
pub mod caps;
pub mod chunk;
pub mod client;
pub mod cmaf;
pub mod codec;
pub mod command;
pub mod dash;
pub mod flv;
pub mod handshake;
pub mod hls;
pub mod http;
pub mod message;
pub mod mpegts;
pub mod record;
pub mod session;
pub mod stat;
pub mod url;
pub mod vod;
pub mod websocket;

pub use message::RawMessage;
