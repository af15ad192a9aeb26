//! Enhanced RTMP capability negotiation in `connect`: which FourCC codecs a client says it can
//! receive (`fourCcList`, v1; `videoFourCcInfoMap` / `audioFourCcInfoMap`, v2), and what a server
//! answers in its `_result`.
//!
//! A client that announces nothing is a legacy client: it gets the classic FLV codec ids only.

use crate::amf0::Amf0Value;

/// `FourCcInfoMap` bits (Enhanced RTMP v2).
pub const CAN_DECODE: u32 = 1;
pub const CAN_ENCODE: u32 = 2;
pub const CAN_FORWARD: u32 = 4;

/// Entries kept at most per list: a hostile connect cannot make us store more.
const MAX_ENTRIES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Video FourCCs the client can receive; "*" stands for any.
    pub video: Vec<String>,
    pub audio: Vec<String>,
    /// The client sent any of the Enhanced RTMP properties.
    pub enhanced: bool,
}

fn entries(v: &Amf0Value) -> Option<&[(String, Amf0Value)]> {
    match v {
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
        Amf0Value::TypedObject { props, .. } => Some(props),
        _ => None,
    }
}

/// Keys of an info map whose mask says the client can take that codec in (decode or forward).
fn receivable(map: &Amf0Value, out: &mut Vec<String>) {
    for (k, v) in entries(map).unwrap_or_default() {
        let mask = v.as_f64().unwrap_or(0.0);
        if mask.is_finite() && mask >= 0.0 && (mask as u32) & (CAN_DECODE | CAN_FORWARD) != 0 && out.len() < MAX_ENTRIES {
            out.push(k.clone());
        }
    }
}

impl Capabilities {
    /// Reads the connect command object's properties.
    pub fn from_connect(props: &[(String, Amf0Value)]) -> Self {
        let mut caps = Capabilities::default();
        for (k, v) in props {
            match k.as_str() {
                "fourCcList" => {
                    caps.enhanced = true;
                    if let Amf0Value::StrictArray(items) = v {
                        // The key may come more than once: the bound is on the list, not per key.
                        let room = MAX_ENTRIES.saturating_sub(caps.video.len());
                        for s in items.iter().filter_map(Amf0Value::as_str).take(room) {
                            caps.video.push(s.to_string());
                        }
                    }
                }
                "videoFourCcInfoMap" => {
                    caps.enhanced = true;
                    receivable(v, &mut caps.video);
                }
                "audioFourCcInfoMap" => {
                    caps.enhanced = true;
                    receivable(v, &mut caps.audio);
                }
                _ => {}
            }
        }
        caps
    }

    fn has(list: &[String], fourcc: [u8; 4]) -> bool {
        list.iter().any(|s| s == "*" || s.as_bytes() == fourcc)
    }

    /// Whether Enhanced RTMP video with this FourCC may be sent to the client.
    pub fn receives_video(&self, fourcc: [u8; 4]) -> bool {
        Self::has(&self.video, fourcc)
    }

    /// Whether Enhanced RTMP audio with this FourCC may be sent. v1 clients had no way to say
    /// anything about audio; a client that announced video but no audio map is taken at its
    /// video word for the codecs it lists.
    pub fn receives_audio(&self, fourcc: [u8; 4]) -> bool {
        Self::has(&self.audio, fourcc) || Self::has(&self.video, fourcc)
    }

    /// The properties a relaying server adds to its connect `_result` for a client that spoke
    /// Enhanced RTMP: it forwards every codec, and echoes the v1 list so v1 clients see support.
    pub fn server_reply(&self) -> Vec<(String, Amf0Value)> {
        if !self.enhanced {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.video.is_empty() {
            let list = self.video.iter().map(|s| Amf0Value::string(s.as_str())).collect();
            out.push(("fourCcList".to_string(), Amf0Value::StrictArray(list)));
        }
        let forward = Amf0Value::Number(f64::from(CAN_FORWARD));
        out.push(("videoFourCcInfoMap".to_string(), Amf0Value::object([("*", forward.clone())])));
        out.push(("audioFourCcInfoMap".to_string(), Amf0Value::object([("*", forward)])));
        out
    }
}

/// The properties a client adds to `connect` to receive the given video FourCCs (both the v1
/// list and the v2 map).
pub fn client_props(video: &[&str]) -> Vec<(String, Amf0Value)> {
    if video.is_empty() {
        return Vec::new();
    }
    let list = video.iter().map(|s| Amf0Value::string(*s)).collect();
    let mask = Amf0Value::Number(f64::from(CAN_DECODE | CAN_FORWARD));
    let map = Amf0Value::object(video.iter().map(|s| (*s, mask.clone())));
    vec![("fourCcList".to_string(), Amf0Value::StrictArray(list)), ("videoFourCcInfoMap".to_string(), map)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: Vec<(&str, Amf0Value)>) -> Vec<(String, Amf0Value)> {
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn legacy_client_announces_nothing() {
        let c = Capabilities::from_connect(&props(vec![("app", Amf0Value::string("live"))]));
        assert!(!c.enhanced);
        assert!(!c.receives_video(*b"hvc1"));
        assert!(c.server_reply().is_empty());
    }

    #[test]
    fn v1_list_and_v2_maps() {
        let c = Capabilities::from_connect(&props(vec![(
            "fourCcList",
            Amf0Value::StrictArray(vec![Amf0Value::string("hvc1"), Amf0Value::string("av01"), Amf0Value::Null]),
        )]));
        assert!(c.enhanced && c.receives_video(*b"hvc1") && c.receives_video(*b"av01"));
        assert!(!c.receives_video(*b"vp09"));

        let c = Capabilities::from_connect(&props(vec![
            (
                "videoFourCcInfoMap",
                Amf0Value::object([
                    ("hvc1", Amf0Value::Number(1.0)),
                    ("av01", Amf0Value::Number(2.0)), // encode only: cannot receive
                    ("vp09", Amf0Value::Number(4.0)),
                ]),
            ),
            ("audioFourCcInfoMap", Amf0Value::EcmaArray(vec![("Opus".into(), Amf0Value::Number(1.0))])),
        ]));
        assert!(c.receives_video(*b"hvc1") && c.receives_video(*b"vp09"));
        assert!(!c.receives_video(*b"av01"));
        assert!(c.receives_audio(*b"Opus") && !c.receives_audio(*b"fLaC"));

        let any = Capabilities::from_connect(&props(vec![("videoFourCcInfoMap", Amf0Value::object([("*", Amf0Value::Number(5.0))]))]));
        assert!(any.receives_video(*b"av01"));
    }

    #[test]
    fn hostile_values_are_ignored() {
        let big = Amf0Value::StrictArray((0..10_000).map(|_| Amf0Value::string("hvc1")).collect());
        let c = Capabilities::from_connect(&props(vec![
            ("fourCcList", big),
            ("videoFourCcInfoMap", Amf0Value::Number(3.0)),
            ("audioFourCcInfoMap", Amf0Value::object([("Opus", Amf0Value::Number(f64::NAN))])),
        ]));
        assert!(c.enhanced);
        assert_eq!(c.video.len(), MAX_ENTRIES);
        assert!(c.audio.is_empty());
    }

    #[test]
    fn client_props_round_trip() {
        let c = Capabilities::from_connect(&client_props(&["hvc1"]));
        assert!(c.enhanced && c.receives_video(*b"hvc1") && !c.receives_video(*b"av01"));
        let reply = c.server_reply();
        assert!(reply.iter().any(|(k, _)| k == "fourCcList"));
        assert!(client_props(&[]).is_empty());
    }
}
