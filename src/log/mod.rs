//! `access_log` / `log_format`: one line per session when it ends, with nginx-rtmp-module's
//! variables and `combined` format, written through nginx's open files (`nginx -s reopen` works).

mod conf;
pub mod format;

use std::ptr::{addr_of, addr_of_mut};
use std::time::{SystemTime, UNIX_EPOCH};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::hooks_mut;
use crate::core::session::Session;
use crate::log_error;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::files::http_log_time;
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF,
    RTMP_MAIN_CONF_OFFSET, RTMP_SRV_CONF,
};
use crate::slot;
use conf::{LogAppConf, LogMainConf, Target};
use format::Fields;

pub struct LogModule;

impl RtmpModule for LogModule {
    type MainConf = LogMainConf;
    type SrvConf = conf::LogSrvConf;
    type AppConf = LogAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_log_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.publish.push(publish);
        h.play.push(play);
        h.disconnect.push(disconnect);
        Ok(())
    }
}

/// What the session asked for (the last publish or play names the line, as in the C module).
#[derive(Default)]
struct LogCtx {
    played: bool,
    published: bool,
    name: String,
    args: String,
}

fn note(s: &mut Session, name: &str, args: &str, publish: bool) {
    if s.ext.get::<LogCtx>().is_none() {
        s.ext.insert(LogCtx::default());
    }
    if let Some(ctx) = s.ext.get_mut::<LogCtx>() {
        ctx.name = name.to_string();
        ctx.args = args.to_string();
        if publish {
            ctx.published = true;
        } else {
            ctx.played = true;
        }
    }
}

// Recorded before the access and live modules decide, so a refused request is logged too.
fn publish(s: &mut Session, req: &PublishReq) -> Step {
    note(s, &req.name, &req.args, true);
    Step::Continue
}

fn play(s: &mut Session, req: &PlayReq) -> Step {
    note(s, &req.name, &req.args, false);
    Step::Continue
}

fn disconnect(s: &mut Session) {
    // Before (or without) a successful connect, the server level's settings apply.
    let conf = match s.app_ctx {
        Some(app) => app.app::<LogModule>(),
        None => s.srv_ctx.app::<LogModule>(),
    };
    let Some(targets) = conf.logs.as_ref().filter(|_| !conf.off) else { return };
    let ctx = s.ext.get::<LogCtx>();
    let remote_addr = s.conn.addr_text();
    let time_local = http_log_time();
    let fields = Fields {
        connection: s.conn.number(),
        remote_addr: &remote_addr,
        app: &s.info.app,
        name: ctx.map_or("", |c| &c.name),
        args: ctx.map_or("", |c| &c.args),
        flashver: &s.info.flashver,
        swf_url: &s.info.swf_url,
        tc_url: &s.info.tc_url,
        page_url: &s.info.page_url,
        played: ctx.is_some_and(|c| c.played),
        published: ctx.is_some_and(|c| c.published),
        bytes_sent: s.conn.sent(),
        bytes_received: s.proto.bytes_received(),
        time_local: &time_local,
        now_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        session_ms: crate::ngx::now_ms().saturating_sub(s.started_ms),
    };
    for t in targets.iter() {
        write_line(s, t, t.format.render(&fields).as_bytes());
    }
}

fn write_line(s: &Session, t: &Target, line: &[u8]) {
    let err = match t.file.write(line) {
        Ok(n) if n == line.len() => return,
        Ok(n) => format!("was incomplete: {n} of {}", line.len()),
        Err(e) => format!("failed: {e}"),
    };
    let now = crate::ngx::now_ms();
    if t.last_error_ms.get().is_some_and(|at| now.saturating_sub(at) < 60_000) {
        return;
    }
    t.last_error_ms.set(Some(now));
    log_error!(s.log, "rtmp: access_log: write() to \"{}\" {}", t.file.name(), err);
}

static LOG_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<LogModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const TAKE12: u32 = nginx_sys::NGX_CONF_TAKE12;
const MORE2: u32 = nginx_sys::NGX_CONF_2MORE;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

static mut LOG_COMMANDS: [ngx_command_t; 5] = [
    directive::<conf::AccessLog, LogAppConf>(c"access_log", RSA | TAKE12, RTMP_APP_CONF_OFFSET),
    // Formats are global whatever the level they are declared at, as in the C module.
    directive::<conf::LogFormat, LogMainConf>(c"log_format", RSA | MORE2, RTMP_MAIN_CONF_OFFSET),
    // nginx-http-flv-module's, at the same levels as there (real configs set them in rtmp {}).
    slot!(LogAppConf, interval, c"log_interval", RSA | TAKE1, RTMP_APP_CONF_OFFSET, unimplemented),
    slot!(LogAppConf, size, c"log_size", RSA | TAKE1, RTMP_APP_CONF_OFFSET, unimplemented),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_log_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(LOG_CTX) as *mut _,
    commands: addr_of_mut!(LOG_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
