//! `log_format` as nginx-rtmp-module compiles it (text and `$var` / `${var}`, the arguments
//! joined) and renders it for one session; pure, tested without nginx.

use std::fmt::Write;

/// nginx-rtmp-module's `combined` format.
pub const COMBINED: &str = "$remote_addr [$time_local] $command \"$app\" \"$name\" \"$args\" - \
                            $bytes_received $bytes_sent \"$pageurl\" \"$flashver\" ($session_readable_time)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Connection,
    RemoteAddr,
    App,
    Name,
    Args,
    FlashVer,
    SwfUrl,
    TcUrl,
    PageUrl,
    Command,
    BytesSent,
    BytesReceived,
    TimeLocal,
    Msec,
    SessionTime,
    SessionReadableTime,
}

const VARS: &[(&str, Var)] = &[
    ("connection", Var::Connection),
    ("remote_addr", Var::RemoteAddr),
    ("app", Var::App),
    ("name", Var::Name),
    ("args", Var::Args),
    ("flashver", Var::FlashVer),
    ("swfurl", Var::SwfUrl),
    ("tcurl", Var::TcUrl),
    ("pageurl", Var::PageUrl),
    ("command", Var::Command),
    ("bytes_sent", Var::BytesSent),
    ("bytes_received", Var::BytesReceived),
    ("time_local", Var::TimeLocal),
    ("msec", Var::Msec),
    ("session_time", Var::SessionTime),
    ("session_readable_time", Var::SessionReadableTime),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Text(String),
    Var(Var),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Format(pub Vec<Op>);

/// What a session tells the log, gathered at disconnect.
#[derive(Clone, Debug, Default)]
pub struct Fields<'a> {
    pub connection: u64,
    pub remote_addr: &'a str,
    pub app: &'a str,
    pub name: &'a str,
    pub args: &'a str,
    pub flashver: &'a str,
    pub swf_url: &'a str,
    pub tc_url: &'a str,
    pub page_url: &'a str,
    pub played: bool,
    pub published: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub time_local: &'a str,
    /// Wall clock in milliseconds since the epoch.
    pub now_ms: u64,
    pub session_ms: u64,
}

impl Format {
    /// Compiles the format from the `log_format` arguments after the name, concatenated.
    pub fn parse<S: AsRef<str>>(parts: &[S]) -> Result<Format, String> {
        let mut ops = Vec::new();
        for part in parts {
            let b = part.as_ref().as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] != b'$' {
                    let start = i;
                    while i < b.len() && b[i] != b'$' {
                        i += 1;
                    }
                    push_text(&mut ops, &part.as_ref()[start..i]);
                    continue;
                }
                let rest = &part.as_ref()[i..];
                i += 1;
                let bracket = b.get(i) == Some(&b'{');
                if bracket {
                    i += 1;
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &part.as_ref()[start..i];
                if bracket {
                    if b.get(i) != Some(&b'}') {
                        return Err(format!("missing closing bracket in \"{rest}\""));
                    }
                    i += 1;
                }
                if name.is_empty() {
                    return Err(format!("invalid parameter \"{rest}\""));
                }
                let var = VARS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("unknown variable \"{name}\""))?;
                ops.push(Op::Var(var));
            }
        }
        Ok(Format(ops))
    }

    pub fn combined() -> Format {
        Format::parse(&[COMBINED]).unwrap_or_default()
    }

    /// One log line, newline included. Text that comes from the client is escaped (`"`, `\` and
    /// control characters as `\xHH`), so a stream name cannot forge or split lines.
    pub fn render(&self, f: &Fields) -> String {
        let mut out = String::with_capacity(256);
        for op in &self.0 {
            match op {
                Op::Text(t) => out.push_str(t),
                Op::Var(v) => render_var(*v, f, &mut out),
            }
        }
        out.push('\n');
        out
    }
}

fn push_text(ops: &mut Vec<Op>, t: &str) {
    if let Some(Op::Text(prev)) = ops.last_mut() {
        prev.push_str(t);
    } else {
        ops.push(Op::Text(t.to_string()));
    }
}

fn render_var(v: Var, f: &Fields, out: &mut String) {
    let number = |out: &mut String, n: u64| {
        let _ = write!(out, "{n}");
    };
    match v {
        Var::Connection => number(out, f.connection),
        Var::RemoteAddr => out.push_str(f.remote_addr),
        Var::App => escape(f.app, out),
        Var::Name => escape(f.name, out),
        Var::Args => escape(f.args, out),
        Var::FlashVer => escape(f.flashver, out),
        Var::SwfUrl => escape(f.swf_url, out),
        Var::TcUrl => escape(f.tc_url, out),
        Var::PageUrl => escape(f.page_url, out),
        Var::Command => out.push_str(command(f.played, f.published)),
        Var::BytesSent => number(out, f.bytes_sent),
        Var::BytesReceived => number(out, f.bytes_received),
        Var::TimeLocal => out.push_str(f.time_local),
        Var::Msec => {
            let _ = write!(out, "{}.{:03}", f.now_ms / 1000, f.now_ms % 1000);
        }
        Var::SessionTime => number(out, f.session_ms / 1000),
        Var::SessionReadableTime => out.push_str(&readable_time(f.session_ms / 1000)),
    }
}

/// `$command`: what the session did.
pub fn command(played: bool, published: bool) -> &'static str {
    match (played, published) {
        (false, false) => "NONE",
        (true, false) => "PLAY",
        (false, true) => "PUBLISH",
        (true, true) => "PLAY+PUBLISH",
    }
}

/// `$session_readable_time`: `4s`, `2m 4s`, `1h 0m 4s`, `3d 1h 0m 4s`.
pub fn readable_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d ");
    }
    if d > 0 || h > 0 {
        let _ = write!(out, "{h}h ");
    }
    if d > 0 || h > 0 || m > 0 {
        let _ = write!(out, "{m}m ");
    }
    let _ = write!(out, "{s}s");
    out
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        if c == '"' || c == '\\' || c.is_ascii_control() {
            let _ = write!(out, "\\x{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_text_and_variables() {
        let f = Format::parse(&["$app/${name}x", " [$msec]"]).unwrap();
        assert_eq!(
            f.0,
            vec![
                Op::Var(Var::App),
                Op::Text("/".into()),
                Op::Var(Var::Name),
                Op::Text("x [".into()),
                Op::Var(Var::Msec),
                Op::Text("]".into()),
            ]
        );
        assert_eq!(Format::parse(&["plain"]).unwrap().0, vec![Op::Text("plain".into())]);
        assert!(Format::combined().0.len() > 10);
    }

    #[test]
    fn rejects_bad_formats() {
        assert_eq!(Format::parse(&["$nope"]).unwrap_err(), "unknown variable \"nope\"");
        assert!(Format::parse(&["a $"]).unwrap_err().starts_with("invalid parameter"));
        assert!(Format::parse(&["${name"]).unwrap_err().starts_with("missing closing bracket"));
        assert!(Format::parse(&["${}"]).is_err());
        assert!(Format::parse(&["$ x"]).is_err());
    }

    #[test]
    fn renders_a_session() {
        let f = Fields {
            connection: 7,
            remote_addr: "127.0.0.1",
            app: "live",
            name: "cam\"1\n",
            args: "token=abc",
            flashver: "FMLE/3.0",
            page_url: "",
            published: true,
            bytes_sent: 3500,
            bytes_received: 1_000_000,
            time_local: "25/Nov/2026:10:00:00 +0000",
            now_ms: 1_700_000_000_042,
            session_ms: 3_723_999,
            ..Fields::default()
        };
        assert_eq!(
            Format::combined().render(&f),
            "127.0.0.1 [25/Nov/2026:10:00:00 +0000] PUBLISH \"live\" \"cam\\x221\\x0A\" \"token=abc\" - \
             1000000 3500 \"\" \"FMLE/3.0\" (1h 2m 3s)\n"
        );
        let f2 = Format::parse(&["$connection $command $session_time $msec"]).unwrap();
        assert_eq!(f2.render(&f), "7 PUBLISH 3723 1700000000.042\n");
        assert_eq!(command(false, false), "NONE");
        assert_eq!(command(true, true), "PLAY+PUBLISH");
    }

    #[test]
    fn readable_times() {
        assert_eq!(readable_time(0), "0s");
        assert_eq!(readable_time(61), "1m 1s");
        assert_eq!(readable_time(3600), "1h 0m 0s");
        assert_eq!(readable_time(86_400 + 5), "1d 0h 0m 5s");
    }
}
