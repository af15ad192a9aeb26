//! A message's chunk encodings, made on first use, one per (chunk size, message stream id):
//! usually a single one, shared by every player (live fan-out and the GOP cache).

use bytes::Bytes;
use rtmp_proto::RawMessage;

use crate::core::session::encode;

#[derive(Default)]
pub struct Encodings(Vec<(u32, u32, Bytes)>);

impl Encodings {
    /// `msg` on chunk stream `cs`, encoded for a player with this chunk size and message stream
    /// id; true when it was encoded now (not shared with an earlier player).
    pub fn get(&mut self, cs: u32, msg: &RawMessage, chunk_size: u32, stream_id: u32) -> (Bytes, bool) {
        if let Some((_, _, b)) = self.0.iter().find(|(c, s, _)| *c == chunk_size && *s == stream_id) {
            return (b.clone(), false);
        }
        let m = RawMessage { stream_id, ..msg.clone() };
        let b = encode(cs, &m, chunk_size);
        self.0.push((chunk_size, stream_id, b.clone()));
        (b, true)
    }
}
