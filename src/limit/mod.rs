//! `max_connections N` (rtmp level, as nginx-rtmp-module): connected clients of every worker,
//! counted in shared memory; a `connect` over the limit is answered NetConnection.Connect.Rejected
//! and closed. Each counted session gives its place back exactly once, at disconnect.

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks::Step;
use crate::core::hooks_mut;
use crate::core::session::Session;
use crate::log_debug;
use crate::ngx::conf::Conf;
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_MAIN_CONF, RTMP_MAIN_CONF_OFFSET, RTMP_SRV_CONF,
};
use crate::ngx::shm::SharedCounter;
use crate::slot;

#[derive(Default)]
pub struct LimitMainConf {
    pub max_connections: Option<u64>,
    /// The cross-worker count, declared when `max_connections` is set.
    counter: Option<SharedCounter>,
}

pub struct LimitModule;

impl RtmpModule for LimitModule {
    type MainConf = LimitMainConf;
    type SrvConf = crate::ngx::module::NoConf;
    type AppConf = crate::ngx::module::NoConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_limit_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let main = crate::ngx::block::current_ctx(cf).main_mut::<LimitModule>(cf);
        if main.max_connections.is_none() {
            return Ok(());
        }
        main.counter = Some(SharedCounter::declare(cf, c"ngx_rtmp_rs_limit", LimitModule::module())?);
        let h = hooks_mut(cf);
        h.connect.push(connect);
        h.disconnect.push(disconnect);
        Ok(())
    }
}

/// Marks a session that holds one place in the count.
struct Counted;

fn connect(s: &mut Session) -> Step {
    let main = s.srv_ctx.main::<LimitModule>();
    let (Some(max), Some(counter)) = (main.max_connections, main.counter.as_ref()) else { return Step::Continue };
    let Some(n) = counter.add(1) else { return Step::Continue };
    if n > i64::try_from(max).unwrap_or(i64::MAX) {
        counter.add(-1);
        return Step::Close(format!("limit: too many connections: {n} > {max} (\"max_connections\")"));
    }
    log_debug!(s.log, "rtmp: limit: {} of {} connections", n, max);
    s.ext.insert(Counted);
    Step::Continue
}

fn disconnect(s: &mut Session) {
    if s.ext.remove::<Counted>().is_none() {
        return;
    }
    if let Some(counter) = s.srv_ctx.main::<LimitModule>().counter.as_ref() {
        counter.add(-1);
    }
}

static LIMIT_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<LimitModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

// Accepted at every level as in the C module, and stored in the one rtmp-level conf.
static mut LIMIT_COMMANDS: [ngx_command_t; 2] = [
    slot!(LimitMainConf, max_connections, c"max_connections", RSA | TAKE1, RTMP_MAIN_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_limit_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(LIMIT_CTX) as *mut _,
    commands: addr_of_mut!(LIMIT_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
