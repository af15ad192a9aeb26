//! AMF0, the encoding of RTMP commands and metadata: a bounded decoder and an encoder.
//!
//! Every marker of the format is understood. Values behind the AVM+ marker (0x11) are AMF3 and are
//! decoded by [`crate::amf3`] into the equivalent AMF0 value, so callers see one value type.

use bytes::{BufMut, BytesMut};
use std::fmt;

/// How deep objects and arrays may nest before the decoder gives up (hostile input guard).
pub const MAX_DEPTH: usize = 64;

/// Upper bound on elements pre-allocated for a declared array length.
const MAX_PREALLOC: usize = 1024;

mod marker {
    #![allow(dead_code)] // the reserved markers document the format
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Index into the table of complex values decoded so far in this message.
    Reference(u16),
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    Date { millis: f64, tz: i16 },
    LongString(String),
    XmlDocument(String),
    TypedObject { class: String, props: Vec<(String, Amf0Value)> },
    Unsupported,
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            // Some clients send 0/1 where a flag is meant.
            Amf0Value::Number(n) => Some(*n != 0.0),
            _ => None,
        }
    }

    /// Key/value pairs of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            Amf0Value::TypedObject { props, .. } => Some(props),
            _ => None,
        }
    }

    /// The property `key` of an object-like value.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Error {
    Truncated,
    BadMarker(u8),
    TooDeep,
    /// A reference to a complex value that was not decoded before it.
    BadReference(u16),
    Amf3(String),
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0Error::Truncated => write!(f, "AMF0 value truncated"),
            Amf0Error::BadMarker(m) => write!(f, "unknown AMF0 marker 0x{m:02x}"),
            Amf0Error::TooDeep => write!(f, "AMF0 nesting deeper than {MAX_DEPTH}"),
            Amf0Error::BadReference(r) => write!(f, "AMF0 reference {r} to no earlier object"),
            Amf0Error::Amf3(e) => write!(f, "AMF3: {e}"),
        }
    }
}

impl std::error::Error for Amf0Error {}

/// A cursor over one message's AMF0 values; references resolve within it.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    complex: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0, complex: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes not yet decoded.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        // Invalid UTF-8 is replaced, never rejected: names come from arbitrary encoders.
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let n = self.u16()? as usize;
        self.utf8(n)
    }

    fn long_string(&mut self) -> Result<String, Amf0Error> {
        let n = self.u32()? as usize;
        self.utf8(n)
    }

    /// Decodes the next value.
    pub fn value(&mut self) -> Result<Amf0Value, Amf0Error> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth >= MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => Amf0Value::String(self.short_string()?),
            marker::OBJECT => {
                self.complex += 1;
                Amf0Value::Object(self.props(depth)?)
            }
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::REFERENCE => {
                let r = self.u16()?;
                if usize::from(r) >= self.complex {
                    return Err(Amf0Error::BadReference(r));
                }
                Amf0Value::Reference(r)
            }
            marker::ECMA_ARRAY => {
                self.complex += 1;
                let _count = self.u32()?;
                Amf0Value::EcmaArray(self.props(depth)?)
            }
            marker::STRICT_ARRAY => {
                self.complex += 1;
                let n = self.u32()? as usize;
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    v.push(self.value_at(depth + 1)?);
                }
                Amf0Value::StrictArray(v)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let tz = self.u16()? as i16;
                Amf0Value::Date { millis, tz }
            }
            marker::LONG_STRING => Amf0Value::LongString(self.long_string()?),
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => Amf0Value::XmlDocument(self.long_string()?),
            marker::TYPED_OBJECT => {
                self.complex += 1;
                let class = self.short_string()?;
                Amf0Value::TypedObject { class, props: self.props(depth)? }
            }
            marker::AVMPLUS => {
                let (v, used) = crate::amf3::decode(self.rest()).map_err(|e| Amf0Error::Amf3(e.to_string()))?;
                self.pos += used;
                v
            }
            // Movieclip, recordset and an object-end out of place are reserved or invalid.
            _ => return Err(Amf0Error::BadMarker(m)),
        })
    }

    /// Properties up to the empty-key object-end marker.
    fn props(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() {
                // Some encoders omit the end marker at the very end of a message.
                if self.is_empty() {
                    return Ok(props);
                }
                if self.buf[self.pos] == marker::OBJECT_END {
                    self.pos += 1;
                    return Ok(props);
                }
            }
            let v = self.value_at(depth + 1)?;
            props.push((key, v));
        }
    }
}

/// Decodes one value from the front of `buf`, returning it and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Amf0Value, usize), Amf0Error> {
    let mut d = Decoder::new(buf);
    let v = d.value()?;
    Ok((v, d.pos))
}

/// Decodes every value in `buf`.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut d = Decoder::new(buf);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.value()?);
    }
    Ok(out)
}

fn put_str_body(out: &mut BytesMut, s: &str) {
    // Short strings carry a 16-bit length: longer keys are cut, never mis-framed.
    let b = s.as_bytes();
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_props(out: &mut BytesMut, props: &[(String, Amf0Value)]) {
    for (k, v) in props {
        put_str_body(out, k);
        encode(v, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

/// Appends the encoding of `v` to `out`. A `String` longer than 65535 bytes is written as a long
/// string.
pub fn encode(v: &Amf0Value, out: &mut BytesMut) {
    match v {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) if s.len() <= u16::MAX as usize => {
            out.put_u8(marker::STRING);
            put_str_body(out, s);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Amf0Value::Object(p) => {
            out.put_u8(marker::OBJECT);
            put_props(out, p);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::Reference(r) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*r);
        }
        Amf0Value::EcmaArray(p) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(p.len() as u32);
            put_props(out, p);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(items.len() as u32);
            for i in items {
                encode(i, out);
            }
        }
        Amf0Value::Date { millis, tz } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*tz);
        }
        Amf0Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Amf0Value::TypedObject { class, props } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_str_body(out, class);
            put_props(out, props);
        }
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
    }
}

pub fn encode_all(values: &[Amf0Value], out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &Amf0Value) -> Amf0Value {
        let mut b = BytesMut::new();
        encode(v, &mut b);
        let (d, used) = decode(&b).unwrap();
        assert_eq!(used, b.len());
        d
    }

    #[test]
    fn every_marker_round_trips() {
        let v = Amf0Value::object([
            ("n", Amf0Value::Number(1.5)),
            ("b", Amf0Value::Boolean(true)),
            ("s", Amf0Value::string("hé")),
            ("null", Amf0Value::Null),
            ("u", Amf0Value::Undefined),
            ("e", Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Number(2.0))])),
            ("a", Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null])),
            ("d", Amf0Value::Date { millis: 1.7e12, tz: -60 }),
            ("l", Amf0Value::LongString("x".repeat(70000))),
            ("x", Amf0Value::XmlDocument("<a/>".into())),
            ("t", Amf0Value::TypedObject { class: "C".into(), props: vec![] }),
            ("r", Amf0Value::Reference(0)),
            ("us", Amf0Value::Unsupported),
        ]);
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn known_bytes() {
        // "connect", 1.0 as FFmpeg sends them.
        let b = [0x02, 0, 7, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0];
        let v = decode_all(&b).unwrap();
        assert_eq!(v, vec![Amf0Value::string("connect"), Amf0Value::Number(1.0)]);
    }

    #[test]
    fn hostile_inputs_are_errors() {
        assert_eq!(decode(&[]), Err(Amf0Error::Truncated));
        assert_eq!(decode(&[0x02, 0xff, 0xff, b'a']), Err(Amf0Error::Truncated));
        assert_eq!(decode(&[0x04]), Err(Amf0Error::BadMarker(4)));
        assert_eq!(decode(&[0x07, 0, 0]), Err(Amf0Error::BadReference(0)));
        // A strict array claiming 4 billion elements must not allocate them.
        assert_eq!(decode(&[0x0a, 0xff, 0xff, 0xff, 0xff]), Err(Amf0Error::Truncated));
        let deep = [0x0a, 0, 0, 0, 1].repeat(10_000);
        assert_eq!(decode(&deep), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn object_without_end_marker_at_message_end() {
        let b = [0x03, 0, 1, b'a', 0x05, 0, 0];
        assert_eq!(decode(&b).unwrap().0, Amf0Value::object([("a", Amf0Value::Null)]));
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_filter("nan", |f| !f.is_nan()).prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,20}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6).prop_map(Amf0Value::Object),
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6).prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips(v in arb_value()) {
            prop_assert_eq!(round_trip(&v), v);
        }

        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&b);
        }
    }
}
