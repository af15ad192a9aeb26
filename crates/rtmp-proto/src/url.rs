//! `rtmp://host[:port]/app/name` parsing (client CLI and relays): where to connect, and the app,
//! tcUrl and stream name the commands carry.

use std::fmt;

pub const DEFAULT_PORT: u16 = 1935;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host as written, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    pub app: String,
    /// Everything after the app segment, `?args` included (servers parse those themselves).
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    NotRtmp(String),
    NoHost(String),
    BadPort(String),
    NoApp(String),
    NoName(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotRtmp(u) => write!(f, "{u}: URL must start with rtmp://"),
            UrlError::NoHost(u) => write!(f, "{u}: no host"),
            UrlError::BadPort(u) => write!(f, "{u}: bad port"),
            UrlError::NoApp(u) => write!(f, "{u}: no application (expected rtmp://host/app/name)"),
            UrlError::NoName(u) => write!(f, "{u}: no stream name (expected rtmp://host/app/name)"),
        }
    }
}

impl std::error::Error for UrlError {}

impl RtmpUrl {
    pub fn parse(s: &str) -> Result<RtmpUrl, UrlError> {
        let rest = strip_prefix_ignore_case(s, "rtmp://")
            .ok_or_else(|| UrlError::NotRtmp(s.to_string()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) =
            split_host_port(authority, DEFAULT_PORT).ok_or_else(|| UrlError::BadPort(s.to_string()))?;
        if host.is_empty() {
            return Err(UrlError::NoHost(s.to_string()));
        }
        let (app, name) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(UrlError::NoApp(s.to_string()));
        }
        if name.is_empty() {
            return Err(UrlError::NoName(s.to_string()));
        }
        Ok(RtmpUrl {
            host: host.to_string(),
            port,
            app: app.to_string(),
            name: name.to_string(),
        })
    }

    /// `host:port` for resolving, brackets restored around IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The tcUrl sent in `connect`: the URL up to and including the app.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}/{}", self.authority(), self.app)
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tc_url(), self.name)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// `None` when a port is present but not a number in 1..=65535.
/// `host[:port]` or `[v6]:port`, the port defaulting to `default_port`; None for a bad port.
pub fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let parse_port = |p: &str| p.parse::<u16>().ok().filter(|&n| n != 0);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, parse_port(p)?)),
            None if after.is_empty() => Some((host, default_port)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, p)) => Some((host, parse_port(p)?)),
        None => Some((authority, default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19400/live/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.name.as_str()),
            ("127.0.0.1", 19400, "live", "x")
        );
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:19400/live");
        assert_eq!(u.authority(), "127.0.0.1:19400");
        assert_eq!(u.to_string(), "rtmp://127.0.0.1:19400/live/x");
    }

    #[test]
    fn default_port_nested_name_and_args() {
        let u = RtmpUrl::parse("RTMP://example.com/app/a/b?key=1&x=/y").unwrap();
        assert_eq!(u.port, DEFAULT_PORT);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.app, "app");
        assert_eq!(u.name, "a/b?key=1&x=/y");
    }

    #[test]
    fn ipv6() {
        let u = RtmpUrl::parse("rtmp://[::1]:1940/live/s").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1940));
        assert_eq!(u.authority(), "[::1]:1940");
        let u = RtmpUrl::parse("rtmp://[::1]/live/s").unwrap();
        assert_eq!(u.port, DEFAULT_PORT);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            RtmpUrl::parse("http://h/live/x"),
            Err(UrlError::NotRtmp(_))
        ));
        assert!(matches!(RtmpUrl::parse("rtmp"), Err(UrlError::NotRtmp(_))));
        assert!(matches!(
            RtmpUrl::parse("rtmp:///live/x"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h:0/live/x"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h:99999/live/x"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h:ab/live/x"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://[::1/live/x"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h"),
            Err(UrlError::NoApp(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h/"),
            Err(UrlError::NoApp(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h/live"),
            Err(UrlError::NoName(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp://h/live/"),
            Err(UrlError::NoName(_))
        ));
        assert!(matches!(
            RtmpUrl::parse("rtmp:/ä/x"),
            Err(UrlError::NotRtmp(_))
        ));
    }
}
