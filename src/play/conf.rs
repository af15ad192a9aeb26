//! `play`, `play_temp_path`, `play_local_path`: nginx-rtmp-module's VOD directives. An
//! application's own entries come first, then those inherited from server and rtmp levels.

use crate::ngx::conf::{merge, Conf, Directive};
use crate::ngx::module::Merge;

/// One `play` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A local directory (full path, no trailing slash).
    Dir(String),
    /// An `http://host[:port]/prefix` URL (kept as written).
    Http(String),
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

/// Whether `url` is a usable `http://host[:port]/prefix`.
fn check_http(url: &str) -> Result<(), String> {
    let rest = url.get("http://".len()..).unwrap_or_default();
    let host_port = rest.split('/').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(format!("invalid URL \"{url}\" in \"play\" directive"));
    }
    Ok(())
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
                check_http(&a)?;
                conf.entries.push(Entry::Http(a));
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
