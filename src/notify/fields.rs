//! What a callback says: arut's fields in arut's order, the client's own query arguments
//! appended, as a form (POST body or GET query) or, with `notify_format json`, one JSON object.

/// Ordered name/value pairs of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn add(&mut self, k: &str, v: impl ToString) -> &mut Self {
        self.0.push((k.to_string(), v.to_string()));
        self
    }

    /// Appends the arguments of a query string (`token=abc&x=1`), decoded, as further fields.
    pub fn add_query(&mut self, query: &str) -> &mut Self {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            self.0.push((rtmp_proto::http::percent_decode(k), rtmp_proto::http::percent_decode(v)));
        }
        self
    }

    /// The same fields as a JSON object; a repeated name keeps its last value.
    pub fn to_json(&self) -> String {
        let mut o = String::from("{");
        let mut first = true;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if self.0.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
                continue;
            }
            if !first {
                o.push(',');
            }
            first = false;
            json_str(&mut o, k);
            o.push(':');
            json_str(&mut o, v);
        }
        o.push('}');
        o
    }
}

fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_args_are_decoded_and_kept_in_order() {
        let mut f = Fields::default();
        f.add("call", "publish").add_query("token=a%20b&x=1+2&flag&bad=%zz&end=%4");
        assert_eq!(
            f.0,
            [("call", "publish"), ("token", "a b"), ("x", "1 2"), ("flag", ""), ("bad", "%zz"), ("end", "%4")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn json_escapes_and_keeps_last_duplicate() {
        let mut f = Fields::default();
        f.add("name", "a\"b\\c\nd\u{1}").add("x", "1").add("x", "2");
        assert_eq!(f.to_json(), r#"{"name":"a\"b\\c\nd\u0001","x":"2"}"#);
    }
}
