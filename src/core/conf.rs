//! Core confs and directives: `server`, `listen`, `application`, and the connection-level settings
//! of nginx-rtmp-module (timeouts, chunk sizes, queues), merged rtmp → server → application.

use crate::ngx::block::{self, Level};
use crate::ngx::conf::{merge, Conf, Directive, Msec, Size};
use crate::ngx::listen::{self, KeepAlive, ListenOpt};
use crate::ngx::module::{CtxRef, Merge};

use super::hooks::Hooks;
use super::CoreModule;

#[derive(Default)]
pub struct CoreMainConf {
    pub servers: Vec<CtxRef>,
    pub hooks: Hooks,
    /// The hooks of links between workers.
    pub internal_hooks: Hooks,
}

#[derive(Default)]
pub struct CoreSrvConf {
    /// This server's own conf context (set by the `server` block).
    pub ctx: Option<CtxRef>,
    pub listens: Vec<ListenOpt>,
    pub applications: Vec<(String, CtxRef)>,
    pub timeout: Option<Msec>,
    pub ping: Option<Msec>,
    pub ping_timeout: Option<Msec>,
    pub max_streams: Option<u64>,
    pub ack_window: Option<u64>,
    pub chunk_size: Option<Size>,
    pub max_message: Option<Size>,
    pub out_queue: Option<u64>,
    pub out_cork: Option<u64>,
    pub busy: Option<bool>,
    pub so_keepalive: Option<bool>,
    pub tcp_nodelay: Option<bool>,
    pub buflen: Option<Msec>,
}

impl CoreSrvConf {
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.map_or(60_000, |m| m.0)
    }
    pub fn ping_ms(&self) -> u64 {
        self.ping.map_or(60_000, |m| m.0)
    }
    pub fn ping_timeout_ms(&self) -> u64 {
        self.ping_timeout.map_or(30_000, |m| m.0)
    }
    pub fn max_streams(&self) -> u32 {
        self.max_streams.unwrap_or(32).min(u32::MAX as u64) as u32
    }
    pub fn ack_window(&self) -> u32 {
        self.ack_window.unwrap_or(5_000_000).min(u32::MAX as u64) as u32
    }
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size.map_or(4096, |s| s.0).min(0x7fff_ffff) as u32
    }
    pub fn max_message(&self) -> usize {
        self.max_message.map_or(1024 * 1024, |s| s.0) as usize
    }
    /// TCP_NODELAY on every RTMP connection (nginx's `tcp_nodelay`, on by default): the small
    /// writes of a session (statuses, audio frames) must not wait for the peer's delayed ACK.
    pub fn tcp_nodelay(&self) -> bool {
        self.tcp_nodelay.unwrap_or(true)
    }
    pub fn out_queue(&self) -> usize {
        self.out_queue.unwrap_or(256) as usize
    }
}

impl Merge for CoreSrvConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.timeout, &prev.timeout);
        merge(&mut self.ping, &prev.ping);
        merge(&mut self.ping_timeout, &prev.ping_timeout);
        merge(&mut self.max_streams, &prev.max_streams);
        merge(&mut self.ack_window, &prev.ack_window);
        merge(&mut self.chunk_size, &prev.chunk_size);
        merge(&mut self.max_message, &prev.max_message);
        merge(&mut self.out_queue, &prev.out_queue);
        merge(&mut self.out_cork, &prev.out_cork);
        merge(&mut self.busy, &prev.busy);
        merge(&mut self.so_keepalive, &prev.so_keepalive);
        merge(&mut self.tcp_nodelay, &prev.tcp_nodelay);
        merge(&mut self.buflen, &prev.buflen);
        if let Some(Size(n)) = self.chunk_size {
            if !(128..=0x7fff_ffff).contains(&n) {
                return Err(format!("\"chunk_size\" must be between 128 and 2147483647, not {n}"));
            }
        }
        if self.max_message.is_some_and(|s| s.0 < 128) {
            return Err("\"max_message\" must be at least 128".into());
        }
        if self.out_queue == Some(0) {
            return Err("\"out_queue\" must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct CoreAppConf {
    pub name: String,
    pub play_time_fix: Option<bool>,
    pub publish_time_fix: Option<bool>,
    /// Blocks nested in this application that are parsed as sub-applications inheriting from it
    /// (`recorder name { … }`), merged from it after it is merged itself.
    pub nested: Vec<CtxRef>,
}

impl Merge for CoreAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.play_time_fix, &prev.play_time_fix);
        merge(&mut self.publish_time_fix, &prev.publish_time_fix);
        Ok(())
    }
}

/// `server { … }` inside `rtmp { }`.
pub struct ServerBlock;
impl Directive<CoreMainConf> for ServerBlock {
    fn set(cf: &Conf, main: &mut CoreMainConf) -> Result<(), String> {
        let ctx = block::new_ctx(cf, Level::Srv, Some(block::current_ctx(cf)))?;
        ctx.srv_mut::<CoreModule>(cf).ctx = Some(ctx);
        main.servers.push(ctx);
        block::parse_block(cf, ctx, Level::Srv)
    }
}

/// `application name { … }` inside `server { }`.
pub struct ApplicationBlock;
impl Directive<CoreSrvConf> for ApplicationBlock {
    fn set(cf: &Conf, srv: &mut CoreSrvConf) -> Result<(), String> {
        let args = cf.args();
        let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        if srv.applications.iter().any(|(n, _)| *n == name) {
            return Err(format!("duplicate application \"{name}\""));
        }
        let ctx = block::new_ctx(cf, Level::App, Some(block::current_ctx(cf)))?;
        // The app-level core conf is ours alone; name it for logs.
        let app: &mut CoreAppConf = app_conf_mut(cf, ctx);
        app.name = name.clone();
        srv.applications.push((name, ctx));
        block::parse_block(cf, ctx, Level::App)
    }
}

/// Parses the block that follows the current directive as a sub-application of the current
/// application (all application-level directives allowed, unset ones inherited from it), as
/// nginx-rtmp-module's `recorder` blocks; returns its context.
pub fn nested_app_block(cf: &Conf) -> Result<CtxRef, String> {
    let parent = block::current_ctx(cf);
    let ctx = block::new_ctx(cf, Level::App, Some(parent))?;
    let name = app_conf_mut(cf, parent).name.clone();
    app_conf_mut(cf, ctx).name = name;
    app_conf_mut(cf, parent).nested.push(ctx);
    block::parse_block(cf, ctx, Level::App)?;
    Ok(ctx)
}

fn app_conf_mut(cf: &Conf, ctx: CtxRef) -> &'static mut CoreAppConf {
    crate::ngx::module::app_conf_mut::<CoreModule>(ctx, cf)
}

/// `listen addr[:port] [bind] [ipv6only=on|off] [so_keepalive=…] [reuseport] [backlog=N] …`
pub struct Listen;
impl Directive<CoreSrvConf> for Listen {
    fn set(cf: &Conf, srv: &mut CoreSrvConf) -> Result<(), String> {
        let args = cf.args();
        let Some((addr, opts)) = args.split_first() else {
            return Err("invalid number of arguments in \"listen\" directive".into());
        };
        let mut l = listen::parse_addr(cf, addr)?;
        for o in opts {
            let o = String::from_utf8_lossy(o);
            let bad = || format!("invalid parameter \"{o}\" of the \"listen\" directive");
            if o == "bind" {
                l.bind = true;
            } else if o == "reuseport" {
                l.reuseport = true;
                l.bind = true;
            } else if o == "proxy_protocol" {
                cf.warn("\"proxy_protocol\" of \"listen\" is not implemented yet and has no effect");
            } else if let Some(v) = o.strip_prefix("ipv6only=") {
                l.ipv6only = match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                };
                l.bind = true;
            } else if let Some(v) = o.strip_prefix("so_keepalive=") {
                l.keepalive = Some(parse_keepalive(v).ok_or_else(bad)?);
                l.bind = true;
            } else if let Some(v) = o.strip_prefix("backlog=") {
                l.backlog = v.parse().map_err(|_| bad())?;
                l.bind = true;
            } else if let Some(v) = o.strip_prefix("rcvbuf=") {
                l.rcvbuf = parse_size(v).ok_or_else(bad)?;
                l.bind = true;
            } else if let Some(v) = o.strip_prefix("sndbuf=") {
                l.sndbuf = parse_size(v).ok_or_else(bad)?;
                l.bind = true;
            } else {
                return Err(bad());
            }
        }
        srv.listens.push(l);
        Ok(())
    }
}

fn parse_size(v: &str) -> Option<i32> {
    let (num, mul) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<i32>().ok()?.checked_mul(mul)
}

fn parse_keepalive(v: &str) -> Option<KeepAlive> {
    match v {
        "on" => return Some(KeepAlive { on: true, idle: 0, intvl: 0, cnt: 0 }),
        "off" => return Some(KeepAlive { on: false, idle: 0, intvl: 0, cnt: 0 }),
        _ => {}
    }
    let mut parts = v.split(':');
    let mut secs = || -> Option<i32> {
        let p = parts.next()?;
        if p.is_empty() {
            return Some(0);
        }
        let p = p.strip_suffix('s').unwrap_or(p);
        p.parse().ok()
    };
    let (idle, intvl, cnt) = (secs()?, secs()?, secs()?);
    Some(KeepAlive { on: true, idle, intvl, cnt })
}
