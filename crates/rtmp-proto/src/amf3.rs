//! AMF3 decoding, as far as RTMP clients use it: values switched to with the AVM+ marker inside
//! type 17 commands and type 15 data. Values are mapped onto their AMF0 equivalents (integers become
//! numbers, arrays become ECMA or strict arrays, objects keep their sealed and dynamic members), so
//! the command layer handles one value type. String, object and trait references are resolved.

use crate::amf0::{Amf0Value, MAX_DEPTH};
use std::fmt;

/// References and elements beyond this are refused, to keep a hostile message's memory bounded.
const MAX_ITEMS: usize = 65_536;
/// References are resolved by copying, so a few bytes can stand for a large value (and nested
/// references for an exponentially large one): what references copy may weigh at most this many
/// times the bytes decoded so far.
const MAX_COPY_FACTOR: usize = 64;
/// The weight of one value node besides its strings, about its size in memory.
const NODE_WEIGHT: usize = 48;

#[derive(Debug, Clone, PartialEq)]
pub enum Amf3Error {
    Truncated,
    BadMarker(u8),
    TooDeep,
    BadReference(usize),
    TooLarge,
    /// Externalizable classes carry a private format we cannot skip.
    Externalizable(String),
}

impl fmt::Display for Amf3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf3Error::Truncated => write!(f, "value truncated"),
            Amf3Error::BadMarker(m) => write!(f, "unknown marker 0x{m:02x}"),
            Amf3Error::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH}"),
            Amf3Error::BadReference(r) => write!(f, "reference {r} to nothing"),
            Amf3Error::TooLarge => write!(f, "too many elements"),
            Amf3Error::Externalizable(c) => write!(f, "externalizable class \"{c}\""),
        }
    }
}

impl std::error::Error for Amf3Error {}

#[derive(Clone)]
struct Traits {
    class: String,
    dynamic: bool,
    sealed: Vec<String>,
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    strings: Vec<String>,
    objects: Vec<Amf0Value>,
    traits: Vec<Traits>,
    /// Weight of what references copied so far.
    copied: usize,
}

/// Roughly the memory `v` takes: nodes and string bytes.
fn weight(v: &Amf0Value) -> usize {
    let props = |p: &[(String, Amf0Value)]| p.iter().map(|(k, v)| k.len() + weight(v)).sum::<usize>();
    NODE_WEIGHT
        + match v {
            Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => s.len(),
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => props(p),
            Amf0Value::TypedObject { class, props: p } => class.len() + props(p),
            Amf0Value::StrictArray(items) => items.iter().map(weight).sum(),
            _ => 0,
        }
}

/// Decodes one AMF3 value from the front of `buf`; returns it as an AMF0 value and the bytes used.
pub fn decode(buf: &[u8]) -> Result<(Amf0Value, usize), Amf3Error> {
    let mut d = Decoder { buf, pos: 0, strings: Vec::new(), objects: Vec::new(), traits: Vec::new(), copied: 0 };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf3Error> {
        let end = self.pos.checked_add(n).ok_or(Amf3Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Amf3Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf3Error> {
        Ok(self.take(1)?[0])
    }

    /// The variable-length 29-bit unsigned integer.
    fn u29(&mut self) -> Result<u32, Amf3Error> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            if i == 3 {
                return Ok((v << 8) | u32::from(b));
            }
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok(v)
    }

    fn f64(&mut self) -> Result<f64, Amf3Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    /// Accounts for a copy made to resolve a reference.
    fn copy(&mut self, weight: usize) -> Result<(), Amf3Error> {
        self.copied = self.copied.saturating_add(weight);
        if self.copied > self.pos.saturating_mul(MAX_COPY_FACTOR) {
            return Err(Amf3Error::TooLarge);
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String, Amf3Error> {
        let h = self.u29()? as usize;
        if h & 1 == 0 {
            let len = self.strings.get(h >> 1).map(String::len).ok_or(Amf3Error::BadReference(h >> 1))?;
            self.copy(NODE_WEIGHT + len)?;
            return Ok(self.strings.get(h >> 1).cloned().unwrap_or_default());
        }
        let s = String::from_utf8_lossy(self.take(h >> 1)?).into_owned();
        // The empty string is never put in the reference table.
        if !s.is_empty() {
            if self.strings.len() >= MAX_ITEMS {
                return Err(Amf3Error::TooLarge);
            }
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// For markers whose header is a reference-or-length: returns Ok(Err(value)) for a reference.
    fn header(&mut self) -> Result<Result<usize, Amf0Value>, Amf3Error> {
        let h = self.u29()? as usize;
        if h & 1 == 0 {
            let w = self.objects.get(h >> 1).map(weight).ok_or(Amf3Error::BadReference(h >> 1))?;
            self.copy(w)?;
            let v = self.objects.get(h >> 1).cloned().unwrap_or(Amf0Value::Null);
            return Ok(Err(v));
        }
        Ok(Ok(h >> 1))
    }

    fn remember(&mut self, v: &Amf0Value) -> Result<usize, Amf3Error> {
        if self.objects.len() >= MAX_ITEMS {
            return Err(Amf3Error::TooLarge);
        }
        self.objects.push(v.clone());
        Ok(self.objects.len() - 1)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf3Error> {
        if depth >= MAX_DEPTH {
            return Err(Amf3Error::TooDeep);
        }
        let m = self.u8()?;
        Ok(match m {
            0x00 => Amf0Value::Undefined,
            0x01 => Amf0Value::Null,
            0x02 => Amf0Value::Boolean(false),
            0x03 => Amf0Value::Boolean(true),
            0x04 => {
                // 29-bit two's complement.
                let v = self.u29()?;
                let v = if v & 0x1000_0000 != 0 { v as i32 - 0x2000_0000 } else { v as i32 };
                Amf0Value::Number(f64::from(v))
            }
            0x05 => Amf0Value::Number(self.f64()?),
            0x06 => Amf0Value::String(self.string()?),
            0x07 | 0x0B => match self.header()? {
                Err(v) => v,
                Ok(len) => {
                    let s = String::from_utf8_lossy(self.take(len)?).into_owned();
                    let v = Amf0Value::XmlDocument(s);
                    self.remember(&v)?;
                    v
                }
            },
            0x08 => match self.header()? {
                Err(v) => v,
                Ok(_) => {
                    let v = Amf0Value::Date { millis: self.f64()?, tz: 0 };
                    self.remember(&v)?;
                    v
                }
            },
            0x09 => match self.header()? {
                Err(v) => v,
                Ok(dense) => {
                    let slot = self.remember(&Amf0Value::Null)?;
                    let mut assoc = Vec::new();
                    loop {
                        let k = self.string()?;
                        if k.is_empty() {
                            break;
                        }
                        assoc.push((k, self.value(depth + 1)?));
                    }
                    if dense > MAX_ITEMS {
                        return Err(Amf3Error::TooLarge);
                    }
                    let mut items = Vec::with_capacity(dense.min(1024));
                    for _ in 0..dense {
                        items.push(self.value(depth + 1)?);
                    }
                    let v = if assoc.is_empty() {
                        Amf0Value::StrictArray(items)
                    } else {
                        assoc.extend(items.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)));
                        Amf0Value::EcmaArray(assoc)
                    };
                    self.objects[slot] = v.clone();
                    v
                }
            },
            0x0A => match self.header()? {
                Err(v) => v,
                Ok(h) => self.object(h, depth)?,
            },
            0x0C => match self.header()? {
                Err(v) => v,
                Ok(len) => {
                    // ByteArray: kept as an opaque string of its bytes.
                    let s = String::from_utf8_lossy(self.take(len)?).into_owned();
                    let v = Amf0Value::XmlDocument(s);
                    self.remember(&v)?;
                    v
                }
            },
            _ => return Err(Amf3Error::BadMarker(m)),
        })
    }

    /// An object after its header bit; `h` is the header shifted right once.
    fn object(&mut self, h: usize, depth: usize) -> Result<Amf0Value, Amf3Error> {
        let traits = if h & 1 == 0 {
            let t = self.traits.get(h >> 1).cloned().ok_or(Amf3Error::BadReference(h >> 1))?;
            self.copy(NODE_WEIGHT + t.class.len() + t.sealed.iter().map(|k| NODE_WEIGHT + k.len()).sum::<usize>())?;
            t
        } else {
            let externalizable = h & 2 != 0;
            let dynamic = h & 4 != 0;
            let count = h >> 3;
            let class = self.string()?;
            if externalizable {
                return Err(Amf3Error::Externalizable(class));
            }
            if count > MAX_ITEMS {
                return Err(Amf3Error::TooLarge);
            }
            let mut sealed = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                sealed.push(self.string()?);
            }
            let t = Traits { class, dynamic, sealed };
            if self.traits.len() >= MAX_ITEMS {
                return Err(Amf3Error::TooLarge);
            }
            self.traits.push(t.clone());
            t
        };
        let slot = self.remember(&Amf0Value::Null)?;
        let mut props = Vec::with_capacity(traits.sealed.len());
        for k in &traits.sealed {
            props.push((k.clone(), self.value(depth + 1)?));
        }
        if traits.dynamic {
            loop {
                let k = self.string()?;
                if k.is_empty() {
                    break;
                }
                props.push((k, self.value(depth + 1)?));
            }
        }
        let v = if traits.class.is_empty() {
            Amf0Value::Object(props)
        } else {
            Amf0Value::TypedObject { class: traits.class, props }
        };
        self.objects[slot] = v.clone();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scalars() {
        assert_eq!(decode(&[0x04, 0x05]).unwrap(), (Amf0Value::Number(5.0), 2));
        assert_eq!(decode(&[0x04, 0xff, 0xff, 0xff, 0xff]).unwrap().0, Amf0Value::Number(-1.0));
        assert_eq!(decode(&[0x04, 0x81, 0x00]).unwrap().0, Amf0Value::Number(128.0));
        assert_eq!(decode(&[0x06, 0x07, b'a', b'p', b'p']).unwrap().0, Amf0Value::string("app"));
        assert_eq!(decode(&[0x03]).unwrap().0, Amf0Value::Boolean(true));
    }

    #[test]
    fn dynamic_object_with_string_reference() {
        // {app: "live", tcUrl: "live"} with the second "live" sent as a reference.
        let b = [
            0x0A, 0x0B, 0x01, // dynamic, anonymous, no sealed members
            0x07, b'a', b'p', b'p', 0x06, 0x09, b'l', b'i', b'v', b'e', //
            0x0B, b't', b'c', b'U', b'r', b'l', 0x06, 0x02, // string reference 1
            0x01,
        ];
        let (v, used) = decode(&b).unwrap();
        assert_eq!(used, b.len());
        assert_eq!(v.get("app"), Some(&Amf0Value::string("live")));
        assert_eq!(v.get("tcUrl"), Some(&Amf0Value::string("live")));
    }

    #[test]
    fn hostile() {
        assert_eq!(decode(&[0x06, 0x02]), Err(Amf3Error::BadReference(1)));
        assert_eq!(decode(&[0x09, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap_err(), Amf3Error::TooLarge);
        assert_eq!(decode(&[0x0A, 0x07, 0x03, b'C']).unwrap_err(), Amf3Error::Externalizable("C".into()));
        let deep = [0x09, 0x03, 0x01].repeat(1000);
        assert_eq!(decode(&deep), Err(Amf3Error::TooDeep));
    }

    proptest! {
        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&b);
        }
    }
}
