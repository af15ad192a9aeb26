//! Callback URLs (`on_publish http://host:port/path?x=1`), parsed and resolved while the
//! configuration loads, as nginx does for `ngx_parse_url` and static upstreams.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::ngx::conf::Conf;

/// A URL parsed and resolved at configuration time. It lives in the configuration pool, so
/// callers hold it as `&'static NotifyUrl`: a worker only runs with the configuration it started
/// with, destroyed after the worker exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyUrl {
    text: String,
    addrs: Vec<SocketAddr>,
    host_header: String,
    path_and_query: String,
}

/// The parts of an `http://` URL before resolution (also for other modules' HTTP fetches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    pub host: String,
    pub port: u16,
    /// The host, with the port when it is not 80.
    pub host_header: String,
    /// Path and query string, at least "/".
    pub path_and_query: String,
}

impl NotifyUrl {
    /// Parses `text` (`http://` may be left out, as nginx-rtmp-module allows) and resolves its
    /// host name now. The name is looked up once, while the configuration loads (blocking, as
    /// nginx does for names in `proxy_pass`); a changed DNS record needs a reload.
    pub fn parse(_cf: &Conf, text: &str) -> Result<NotifyUrl, String> {
        let parts = split(text)?;
        let addrs = resolve(&parts.host, parts.port)?;
        Ok(NotifyUrl {
            text: text.to_string(),
            addrs,
            host_header: parts.host_header,
            path_and_query: parts.path_and_query,
        })
    }

    /// The URL as configured, for log lines.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Addresses to try, in resolver order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `Host` header: the host, with the port when it is not 80.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// Request target: path and query string, at least "/".
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}

/// Splits `[http://]host[:port][/path][?query]` (IPv6 in brackets; no user, no https).
pub fn split(text: &str) -> Result<Parts, String> {
    let has_prefix = |p: &str| text.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    if has_prefix("https://") {
        return Err("https is not supported, callbacks are plain HTTP (use http:// or a local proxy)".into());
    }
    let rest = if has_prefix("http://") { &text[7..] } else { text };
    if let Some(i) = rest.find("://") {
        if !rest[..i].contains(['/', '?']) {
            return Err(format!("unsupported scheme \"{}\", only http:// is", &rest[..i]));
        }
    }
    if rest.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("unix:")) {
        return Err("unix: sockets are not supported, use http://host:port/".into());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let target = target.split('#').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    if authority.contains('@') {
        return Err("user name and password in the URL are not supported".into());
    }
    if let Some(bad) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid character {bad:?}"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or("invalid IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("invalid port")?),
        };
        (ip, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("invalid port \"{p}\""))?,
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if authority.starts_with('[') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!("invalid IPv6 address \"{host}\""));
    }
    let bracketed = if authority.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    let host_header = if port == 80 { bracketed } else { format!("{bracketed}:{port}") };
    let path_and_query = if target.starts_with('/') { target.to_string() } else { format!("/{target}") };
    Ok(Parts { host: host.to_string(), port, host_header, path_and_query })
}

/// The addresses of `host` (an IP as written, or looked up now: configuration time only).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = (host, port).to_socket_addrs().map_err(|e| format!("host not found in \"{host}\": {e}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(format!("host not found in \"{host}\""));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, u16, String, String) {
        let p = split(text).unwrap();
        (p.host, p.port, p.host_header, p.path_and_query)
    }

    #[test]
    fn splits_urls() {
        let s = |a: &str, b: u16, c: &str, d: &str| (a.to_string(), b, c.to_string(), d.to_string());
        assert_eq!(
            parts("http://127.0.0.1:8080/on_publish?x=1"),
            s("127.0.0.1", 8080, "127.0.0.1:8080", "/on_publish?x=1")
        );
        assert_eq!(parts("HTTP://example.com/cb"), s("example.com", 80, "example.com", "/cb"));
        assert_eq!(parts("example.com:81"), s("example.com", 81, "example.com:81", "/"));
        assert_eq!(parts("localhost?a=b#frag"), s("localhost", 80, "localhost", "/?a=b"));
        assert_eq!(parts("http://[::1]:9000/p"), s("::1", 9000, "[::1]:9000", "/p"));
        assert_eq!(parts("http://[::1]/p"), s("::1", 80, "[::1]", "/p"));
    }

    #[test]
    fn refuses_bad_urls() {
        let e = |t: &str| split(t).unwrap_err();
        assert!(e("https://example.com/cb").contains("https is not supported"));
        assert!(e("HTTPS://example.com/cb").contains("https is not supported"));
        assert!(e("ftp://example.com/").contains("unsupported scheme"));
        assert!(e("unix:/tmp/app.sock").contains("unix:"));
        assert_eq!(e("http:///path"), "no host");
        assert_eq!(e("http://:80/path"), "no host");
        assert_eq!(e("http://h:0/"), "invalid port \"0\"");
        assert_eq!(e("http://h:99999/"), "invalid port \"99999\"");
        assert_eq!(e("http://h:x/"), "invalid port \"x\"");
        assert!(e("http://u:p@h/").contains("user name"));
        assert!(e("http://h/a b").contains("invalid character"));
        assert!(e("http://[zz]/").contains("invalid IPv6"));
    }

    #[test]
    fn resolves_literals_and_names() {
        assert_eq!(resolve("127.0.0.1", 8080).unwrap(), vec!["127.0.0.1:8080".parse().unwrap()]);
        assert!(resolve("localhost", 80).unwrap().iter().all(|a| a.ip().is_loopback()));
        assert!(resolve("no-such-host.invalid", 80)
            .unwrap_err()
            .starts_with("host not found in \"no-such-host.invalid\""));
    }
}
