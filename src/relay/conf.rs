//! Relay confs: nginx-rtmp-module's `push` / `pull` targets with their URL options, and the
//! reconnect, session and buffer settings, merged rtmp → server → application.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::ngx::conf::{merge, Conf, Directive, Msec};
use crate::ngx::module::Merge;
use crate::ngx::resolver::Resolver;
use crate::ngx::tls::TlsClient;

/// The flashVer a relay announces unless `flashVer=` says otherwise (the C module's).
pub const DEFAULT_FLASHVER: &str = "LNX.11,1,102,55";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    /// RTMP over TLS (Facebook Live and others accept nothing else).
    Rtmps,
}

/// One `push` or `pull` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The URL as written, for log lines.
    pub url: String,
    pub scheme: Scheme,
    /// Host as written, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL (the default tcUrl's, as the C module's).
    pub authority: String,
    /// The remote application; `None`: the local one.
    pub app: Option<String>,
    /// The remote stream name (`?args` included); `None`: the local one.
    pub play_path: Option<String>,
    /// Only the local stream of this name is relayed (`name=`).
    pub name: Option<String>,
    pub tc_url: Option<String>,
    pub page_url: String,
    pub swf_url: String,
    pub flash_ver: String,
    /// `live=1`: play with start -1000 (live only).
    pub live: bool,
    pub start: Option<f64>,
    pub stop: Option<f64>,
    /// A pull that runs without players (`static`, with `name=`).
    pub is_static: bool,
    /// TLS: verify the server's certificate (`ssl_verify=off` to skip; on by default).
    pub ssl_verify: bool,
    /// Addresses found at configuration time (empty: the name did not resolve then).
    pub addrs: Vec<SocketAddr>,
}

impl Target {
    /// Whether this target relays the local stream `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
    }

    /// The remote application for a local one.
    pub fn remote_app<'a>(&'a self, local_app: &'a str) -> &'a str {
        self.app.as_deref().unwrap_or(local_app)
    }

    /// The remote stream name for a local one.
    pub fn remote_name<'a>(&'a self, local: &'a str) -> &'a str {
        self.play_path.as_deref().unwrap_or(local)
    }

    /// The tcUrl sent in `connect`: by default the URL's `host[:port]` as written and the remote
    /// app (the C module leaves the app out when it is the local one; we name it).
    pub fn tc_url_for(&self, local_app: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        };
        self.tc_url.clone().unwrap_or_else(|| format!("{scheme}://{}/{}", self.authority, self.remote_app(local_app)))
    }

    /// `play`'s start and duration, in ms as on the wire (the C module's): live → (-1000, -1000);
    /// otherwise `start=` (unset or 0: -2000, live or recorded) and `stop=` − start (unset or 0:
    /// -1000, to the end).
    pub fn play_range(&self) -> (f64, f64) {
        if self.live {
            return (-1000.0, -1000.0);
        }
        let start = self.start.filter(|s| *s != 0.0);
        let duration = self.stop.filter(|s| *s != 0.0).map_or(-1000.0, |stop| stop - start.unwrap_or(0.0).max(0.0));
        (start.unwrap_or(-2000.0), duration)
    }

    /// Parses `URL [key=value ...]` (the arguments of `push` / `pull`).
    pub fn parse(args: &[&str]) -> Result<Target, String> {
        let (url, opts) = args.split_first().ok_or("a URL is required")?;
        let mut t = parse_url(url)?;
        for opt in opts {
            let (k, v) = opt.split_once('=').unwrap_or((opt, "1"));
            match k.to_ascii_lowercase().as_str() {
                "app" => t.app = Some(v.to_string()),
                "name" => t.name = Some(v.to_string()),
                "tcurl" => t.tc_url = Some(v.to_string()),
                "pageurl" => t.page_url = v.to_string(),
                "swfurl" => t.swf_url = v.to_string(),
                "flashver" => t.flash_ver = v.to_string(),
                "playpath" => t.play_path = Some(v.to_string()),
                "live" => t.live = number(k, v)? != 0.0,
                "start" => t.start = Some(number(k, v)?),
                "stop" => t.stop = Some(number(k, v)?),
                "static" => t.is_static = true,
                "ssl_verify" => {
                    t.ssl_verify = match v.to_ascii_lowercase().as_str() {
                        "on" | "1" => true,
                        "off" | "0" => false,
                        _ => return Err(format!("invalid value \"{v}\" of \"ssl_verify\", it must be \"on\" or \"off\"")),
                    }
                }
                _ => return Err(format!("unsupported parameter \"{opt}\"")),
            }
        }
        Ok(t)
    }
}

fn number(k: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| format!("invalid number \"{v}\" in \"{k}=\""))
}

/// `[rtmp://|rtmps://]host[:port][/app[/play path]]`.
fn parse_url(url: &str) -> Result<Target, String> {
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("rtmps://") {
        (Scheme::Rtmps, &url[8..])
    } else if lower.starts_with("rtmp://") {
        (Scheme::Rtmp, &url[7..])
    } else if lower.contains("://") {
        return Err(format!("\"{url}\": only rtmp:// and rtmps:// URLs can be relayed"));
    } else {
        (Scheme::Rtmp, url)
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let default_port = if scheme == Scheme::Rtmps { 443 } else { 1935 };
    let (host, port) = rtmp_proto::url::split_host_port(authority, default_port).ok_or_else(|| format!("\"{url}\": bad port"))?;
    if host.is_empty() {
        return Err(format!("\"{url}\": no host"));
    }
    let (app, play_path) = path.split_once('/').unwrap_or((path, ""));
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(Target {
        url: url.to_string(),
        scheme,
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        app: some(app),
        play_path: some(play_path),
        name: None,
        tc_url: None,
        page_url: String::new(),
        swf_url: String::new(),
        flash_ver: DEFAULT_FLASHVER.to_string(),
        live: false,
        start: None,
        stop: None,
        is_static: false,
        ssl_verify: true,
        addrs: Vec::new(),
    })
}

/// Resolves a target's host at configuration time (as the C module does, but a name that does
/// not resolve now is only a warning: it is tried again at every connection attempt).
fn resolve(t: &mut Target) -> Result<(), String> {
    if let Ok(ip) = t.host.parse::<IpAddr>() {
        t.addrs = vec![SocketAddr::new(ip, t.port)];
        return Ok(());
    }
    match (t.host.as_str(), t.port).to_socket_addrs() {
        Ok(a) => {
            t.addrs = a.collect();
            Ok(())
        }
        Err(e) => Err(format!("host \"{}\" not found now ({e}); it is looked up again on each attempt", t.host)),
    }
}

#[derive(Default)]
pub struct RelayAppConf {
    pub pushes: Vec<Target>,
    pub pulls: Vec<Target>,
    pub push_reconnect: Option<Msec>,
    pub pull_reconnect: Option<Msec>,
    pub session_relay: Option<bool>,
    pub relay_buffer: Option<Msec>,
    /// CA certificates for `rtmps://` targets (the fork's `rtmp_relay_ssl_trusted_certificate`).
    pub ssl_trusted_certificate: Option<String>,
    /// nginx's resolver for target host names at each attempt (`resolver`); without one,
    /// names are looked up once, at configuration time.
    pub resolver: Option<&'static Resolver>,
    pub resolver_timeout: Option<Msec>,
    /// TLS contexts of this application's `rtmps://` targets: verifying, and not.
    pub tls: Option<&'static TlsClient>,
    pub tls_noverify: Option<&'static TlsClient>,
}

impl RelayAppConf {
    pub fn push_reconnect_ms(&self) -> u64 {
        self.push_reconnect.map_or(3000, |m| m.0)
    }
    pub fn pull_reconnect_ms(&self) -> u64 {
        self.pull_reconnect.map_or(3000, |m| m.0)
    }
    pub fn session_relay(&self) -> bool {
        self.session_relay.unwrap_or(false)
    }
    pub fn resolver_timeout_ms(&self) -> u64 {
        self.resolver_timeout.map_or(30_000, |m| m.0)
    }
    pub fn relay_buffer_ms(&self) -> u64 {
        self.relay_buffer.map_or(5000, |m| m.0)
    }
}

impl Merge for RelayAppConf {
    fn merge(&mut self, prev: &Self, cf: &Conf) -> Result<(), String> {
        merge(&mut self.push_reconnect, &prev.push_reconnect);
        merge(&mut self.pull_reconnect, &prev.pull_reconnect);
        merge(&mut self.session_relay, &prev.session_relay);
        merge(&mut self.relay_buffer, &prev.relay_buffer);
        merge(&mut self.ssl_trusted_certificate, &prev.ssl_trusted_certificate);
        merge(&mut self.resolver, &prev.resolver);
        merge(&mut self.resolver_timeout, &prev.resolver_timeout);
        let rtmps = || self.pushes.iter().chain(&self.pulls).filter(|t| t.scheme == Scheme::Rtmps);
        if rtmps().any(|t| t.ssl_verify) && self.tls.is_none() {
            self.tls = Some(TlsClient::new(cf, self.ssl_trusted_certificate.as_deref(), true)?);
        }
        if rtmps().any(|t| !t.ssl_verify) && self.tls_noverify.is_none() {
            self.tls_noverify = Some(TlsClient::new(cf, None, false)?);
        }
        Ok(())
    }
}

/// `resolver ADDRESS ... [valid=TIME] [ipv6=on|off]`, as nginx's.
pub struct ResolverDirective;

impl Directive<RelayAppConf> for ResolverDirective {
    fn set(cf: &Conf, conf: &mut RelayAppConf) -> Result<(), String> {
        if conf.resolver.is_some() {
            return Err("\"resolver\" directive is duplicate".into());
        }
        conf.resolver = Some(Resolver::create(cf, &cf.args())?);
        Ok(())
    }
}

/// `push URL [options]` / `pull URL [options]`.
pub struct PushPull;

impl Directive<RelayAppConf> for PushPull {
    fn set(cf: &Conf, conf: &mut RelayAppConf) -> Result<(), String> {
        let directive = cf.name();
        let args: Vec<String> = cf.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut t = Target::parse(&args).map_err(|e| format!("\"{directive}\": {e}"))?;
        let push = directive == "push";
        if t.is_static && push {
            return Err("\"static\" is for \"pull\" only".into());
        }
        if t.is_static && t.name.is_none() {
            return Err("a static pull needs a \"name=\"".into());
        }
        if let Err(e) = resolve(&mut t) {
            cf.warn(&format!("\"{directive}\": {e}"));
        }
        if push {
            conf.pushes.push(t);
        } else {
            conf.pulls.push(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Target, String> {
        Target::parse(&s.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn urls() {
        let t = parse("rtmp://a.rtmp.youtube.com/live2/KEY").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.app.as_deref(), t.play_path.as_deref()), ("a.rtmp.youtube.com", 1935, Some("live2"), Some("KEY")));
        assert_eq!(t.remote_name("local"), "KEY");
        assert_eq!(t.tc_url_for("live"), "rtmp://a.rtmp.youtube.com/live2");
        let t = parse("127.0.0.1:1940/record/").unwrap();
        assert_eq!((t.port, t.app.as_deref(), t.remote_name("cam")), (1940, Some("record"), "cam"));
        let t = parse("RTMP://[::1]:1941").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.remote_app("live")), ("::1", 1941, "live"));
        assert_eq!(t.tc_url_for("live"), "rtmp://[::1]:1941/live");
        // The default tcUrl has the host and port as written.
        assert_eq!(parse("rtmps://Host.example/app/k").unwrap().tc_url_for("l"), "rtmps://Host.example/app");
        let t = parse("rtmps://live-api-s.facebook.com:443/rtmp/KEY").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Rtmps, 443));
        assert_eq!(parse("rtmps://h/a/b").unwrap().port, 443);
        // A play path with slashes and args is kept whole.
        assert_eq!(parse("rtmp://h/app/a/b?k=v").unwrap().play_path.as_deref(), Some("a/b?k=v"));
        assert!(parse("http://h/app").is_err());
        assert!(parse("rtmp://:1935/app").is_err());
        assert!(parse("rtmp://h:0/app").is_err());
        assert!(parse("rtmp://h:x/app").is_err());
    }

    #[test]
    fn options() {
        let t = parse("rtmp://h/app name=cam app=other playPath=remote tcUrl=rtmp://x/y pageUrl=p swfUrl=s FLASHVER=f live=1 static").unwrap();
        assert_eq!(t.name.as_deref(), Some("cam"));
        assert_eq!((t.remote_app("l"), t.remote_name("l")), ("other", "remote"));
        assert_eq!((t.tc_url_for("l").as_str(), t.page_url.as_str(), t.swf_url.as_str(), t.flash_ver.as_str()), ("rtmp://x/y", "p", "s", "f"));
        assert!(t.live && t.is_static);
        assert_eq!(t.play_range(), (-1000.0, -1000.0));
        assert!(t.matches("cam") && !t.matches("other"));
        let t = parse("rtmp://h/app start=1000 stop=5000").unwrap();
        assert_eq!(t.play_range(), (1000.0, 4000.0));
        // Unset (or 0, as in the C module): live or recorded, to the end.
        assert_eq!(parse("rtmp://h/app").unwrap().play_range(), (-2000.0, -1000.0));
        assert_eq!(parse("rtmp://h/app live=0 start=0 stop=0").unwrap().play_range(), (-2000.0, -1000.0));
        assert_eq!(parse("rtmp://h/app stop=5000").unwrap().play_range(), (-2000.0, 5000.0));
        assert_eq!(parse("rtmp://h/app start=3000").unwrap().play_range(), (3000.0, -1000.0));
        assert!(parse("rtmp://h/app bogus=1").unwrap_err().contains("unsupported parameter"));
        assert!(parse("rtmp://h/app start=x").is_err());
        assert!(!parse("rtmps://h/app ssl_verify=off").unwrap().ssl_verify);
    }

    #[test]
    fn resolution() {
        let mut t = parse("rtmp://127.0.0.1:1999/app").unwrap();
        resolve(&mut t).unwrap();
        assert_eq!(t.addrs, vec!["127.0.0.1:1999".parse().unwrap()]);
        let mut t = parse("rtmp://localhost/app").unwrap();
        resolve(&mut t).unwrap();
        assert!(t.addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 1935) && !t.addrs.is_empty());
        let mut t = parse("rtmp://no-such-host.invalid/app").unwrap();
        assert!(resolve(&mut t).is_err());
        assert!(t.addrs.is_empty());
    }
}
