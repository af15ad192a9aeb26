//! `play`, `play_temp_path`, `play_local_path`: nginx-rtmp-module's VOD directives. An
//! application's own entries come first, then those inherited from server and rtmp levels.

use std::net::SocketAddr;

use crate::ngx::conf::{merge, Conf, Directive};
use crate::ngx::module::Merge;

/// One `play` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A local directory (full path, no trailing slash).
    Dir(String),
    /// An `http://host[:port]/prefix` URL, resolved while the configuration loads.
    Http(Remote),
}

/// A remote play entry: files are fetched from `http://host[:port]/prefix/<file>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The URL as written, for log lines.
    pub text: String,
    /// `Host` header: the host, with the port when it is not 80.
    pub host_header: String,
    /// Path prefix without its trailing slash (may be empty).
    pub prefix: String,
    /// Addresses to try in order; empty when the host did not resolve at configuration time.
    pub addrs: Vec<SocketAddr>,
}

#[derive(Default)]
pub struct PlayAppConf {
    pub entries: Vec<Entry>,
    pub temp_path: Option<String>,
    pub local_path: Option<String>,
}

impl PlayAppConf {
    /// Where remote files are downloaded (default `/tmp`).
    pub fn temp_path(&self) -> &str {
        self.temp_path.as_deref().unwrap_or("/tmp")
    }
    /// Where complete downloads are kept (off by default).
    pub fn local_path(&self) -> Option<&str> {
        self.local_path.as_deref().filter(|p| !p.is_empty())
    }
}

impl Merge for PlayAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        for e in &prev.entries {
            if !self.entries.contains(e) {
                self.entries.push(e.clone());
            }
        }
        merge(&mut self.temp_path, &prev.temp_path);
        merge(&mut self.local_path, &prev.local_path);
        Ok(())
    }
}

/// Parses `http://host[:port][/prefix]` (netcall's URL rules): the host, the port, the `Host`
/// header and the prefix (a path: a query or fragment written after it is not kept).
fn parse_http(url: &str) -> Result<(String, u16, String, String), String> {
    let bad = |why: String| format!("invalid URL \"{url}\" in \"play\" directive: {why}");
    if !url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) {
        return Err(bad("it must start with http://".into()));
    }
    let p = crate::netcall::http_url::split(url).map_err(bad)?;
    let prefix = p.path_and_query.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/').to_string();
    Ok((p.host, p.port, p.host_header, prefix))
}

/// Resolves a remote entry's host now (as nginx does for static upstreams). A name that does not
/// resolve is a warning: that entry then fails every play and the next entry is tried.
fn remote(cf: &Conf, url: &str) -> Result<Remote, String> {
    let (host, port, host_header, prefix) = parse_http(url)?;
    let addrs = crate::netcall::http_url::resolve(&host, port).unwrap_or_else(|e| {
        cf.warn(&format!("\"play\": {e} (\"{url}\")"));
        Vec::new()
    });
    Ok(Remote {
        text: url.to_string(),
        host_header,
        prefix,
        addrs,
    })
}

/// `play ENTRY [ENTRY...]`, repeatable.
pub struct Play;

impl Directive<PlayAppConf> for Play {
    fn set(cf: &Conf, conf: &mut PlayAppConf) -> Result<(), String> {
        for a in cf.args() {
            let a = String::from_utf8_lossy(a).into_owned();
            if a.is_empty() || a.contains('\0') {
                return Err("invalid empty entry in \"play\" directive".into());
            }
            let lower = a.to_ascii_lowercase();
            if lower.starts_with("http://") {
                conf.entries.push(Entry::Http(remote(cf, &a)?));
            } else if lower.contains("://") {
                return Err(format!(
                    "unsupported URL \"{a}\" in \"play\" directive (a directory or http://)"
                ));
            } else {
                let full = cf.full_name(&a)?;
                let full = full.trim_end_matches('/');
                conf.entries.push(Entry::Dir(if full.is_empty() {
                    "/".into()
                } else {
                    full.to_string()
                }));
            }
        }
        Ok(())
    }
}

/// `play_temp_path DIR` / `play_local_path DIR`: resolved against the prefix.
pub struct PlayPath<const LOCAL: bool>;

impl<const LOCAL: bool> Directive<PlayAppConf> for PlayPath<LOCAL> {
    fn set(cf: &Conf, conf: &mut PlayAppConf) -> Result<(), String> {
        let name = if LOCAL {
            "play_local_path"
        } else {
            "play_temp_path"
        };
        let slot = if LOCAL {
            &mut conf.local_path
        } else {
            &mut conf.temp_path
        };
        if slot.is_some() {
            return Err(format!("\"{name}\" directive is duplicate"));
        }
        let args = cf.args();
        let [dir] = args.as_slice() else {
            return Err(format!(
                "invalid number of arguments in \"{name}\" directive"
            ));
        };
        let full = cf.full_name(&String::from_utf8_lossy(dir))?;
        *slot = Some(full.trim_end_matches('/').to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_http;

    #[test]
    fn http_entries() {
        let p = parse_http;
        let ok = |h: &str, port: u16, hh: &str, pre: &str| {
            Ok((h.to_string(), port, hh.to_string(), pre.to_string()))
        };
        assert_eq!(
            p("http://127.0.0.1:8080/files/"),
            ok("127.0.0.1", 8080, "127.0.0.1:8080", "/files")
        );
        assert_eq!(
            p("HTTP://example.com"),
            ok("example.com", 80, "example.com", "")
        );
        assert_eq!(p("http://h/a/b?x=1"), ok("h", 80, "h", "/a/b"));
        assert_eq!(p("http://[::1]:81/v"), ok("::1", 81, "[::1]:81", "/v"));
        for bad in [
            "http://:80/x",
            "http://h:0/",
            "http://h:x/",
            "http://u@h/",
            "http://[zz]/",
            "http://h/a b",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
