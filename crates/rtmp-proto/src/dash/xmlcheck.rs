//! A tiny, strict XML reader for the tests: enough of XML 1.0 to check that an MPD is well formed
//! (one root, matched tags, quoted and escaped attributes, no duplicates, known entities only) and
//! to read it back as a tree.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn attr_u64(&self, name: &str) -> Option<u64> {
        self.attr(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.')
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn starts(&self, p: &str) -> bool {
        self.s[self.pos..].starts_with(p.as_bytes())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.starts(p) {
            self.pos += p.len();
            Ok(())
        } else {
            Err(format!("expected {p:?} at {}", self.pos))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
            _ => return Err(format!("expected a name at {start}")),
        }
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        Ok(String::from_utf8(self.s[start..self.pos].to_vec()).unwrap())
    }

    fn value(&mut self) -> Result<String, String> {
        let q = self.peek().filter(|&b| b == b'"' || b == b'\'').ok_or(format!("unquoted value at {}", self.pos))?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let b = self.peek().ok_or("unterminated value")?;
            if b == q {
                self.pos += 1;
                return Ok(out);
            }
            match b {
                b'<' => return Err(format!("'<' in a value at {}", self.pos)),
                b'&' => out.push(self.entity()?),
                _ => {
                    let ch = std::str::from_utf8(&self.s[self.pos..]).unwrap().chars().next().unwrap();
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    fn entity(&mut self) -> Result<char, String> {
        for (e, c) in [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"'), ("&apos;", '\'')] {
            if self.starts(e) {
                self.pos += e.len();
                return Ok(c);
            }
        }
        Err(format!("bad entity at {}", self.pos))
    }

    fn element(&mut self) -> Result<Element, String> {
        self.expect("<")?;
        let name = self.name()?;
        let mut attrs: Vec<(String, String)> = Vec::new();
        loop {
            let had_ws = matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t'));
            self.ws();
            if self.starts("/>") {
                self.pos += 2;
                return Ok(Element { name, attrs, children: Vec::new() });
            }
            if self.starts(">") {
                self.pos += 1;
                break;
            }
            if !had_ws {
                return Err(format!("no space before an attribute at {}", self.pos));
            }
            let k = self.name()?;
            self.ws();
            self.expect("=")?;
            self.ws();
            let v = self.value()?;
            if attrs.iter().any(|(a, _)| *a == k) {
                return Err(format!("duplicate attribute {k}"));
            }
            attrs.push((k, v));
        }
        let mut children = Vec::new();
        loop {
            // Only whitespace text is expected in an MPD; other text is read and dropped.
            while let Some(b) = self.peek() {
                match b {
                    b'<' => break,
                    b'&' => {
                        self.entity()?;
                    }
                    _ => self.pos += 1,
                }
            }
            if self.starts("</") {
                self.pos += 2;
                let end = self.name()?;
                if end != name {
                    return Err(format!("</{end}> closes <{name}>"));
                }
                self.ws();
                self.expect(">")?;
                return Ok(Element { name, attrs, children });
            }
            if self.peek().is_none() {
                return Err(format!("<{name}> not closed"));
            }
            children.push(self.element()?);
        }
    }
}

/// Parses a whole document: an optional XML declaration, one root element, whitespace.
pub fn parse(doc: &str) -> Result<Element, String> {
    let mut r = Reader { s: doc.as_bytes(), pos: 0 };
    if r.starts("<?xml") {
        let end = doc.find("?>").ok_or("unterminated declaration")?;
        r.pos = end + 2;
    }
    r.ws();
    let root = r.element()?;
    r.ws();
    if r.pos != doc.len() {
        return Err(format!("content after the root element at {}", r.pos));
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects() {
        let e = parse("<?xml version=\"1.0\"?>\n<a x=\"1\" y='&amp;&lt;'><b/><c k=\"v\">t</c></a>\n").unwrap();
        assert_eq!(e.name, "a");
        assert_eq!(e.attr("y"), Some("&<"));
        assert_eq!(e.children.len(), 2);
        assert_eq!(e.child("c").unwrap().attr("k"), Some("v"));
        for bad in [
            "<a>",
            "<a></b>",
            "<a x=1/>",
            "<a x=\"1\" x=\"2\"/>",
            "<a x=\"<\"/>",
            "<a x=\"&foo;\"/>",
            "<a/><b/>",
            "<a x=\"1\"y=\"2\"/>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
