//! Exec: nginx-rtmp-module's `exec*` directives. Programs run beside streams (push, pull), beside
//! the workers (static) or once per event, in their own process groups, watched and respawned.

mod children;
mod conf;
mod eval;
mod handlers;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::log::Log;
use crate::ngx::module::{exit_process, init_process, WorkerHooks,
    NoConf, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF,
    RTMP_MAIN_CONF_OFFSET, RTMP_SRV_CONF,
};
use crate::ngx::process;
use crate::{log_info, slot};
pub use conf::{ExecAppConf, ExecMainConf};

pub struct ExecModule;

impl RtmpModule for ExecModule {
    type MainConf = ExecMainConf;
    type SrvConf = NoConf;
    type AppConf = ExecAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_exec_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.published.push(handlers::published);
        h.play.push(handlers::play);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        h.record_done.push(handlers::record_done);
        Ok(())
    }
}

static EXEC_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<ExecModule>();

const MORE: u32 = nginx_sys::NGX_CONF_1MORE;
const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

const fn line(name: &'static std::ffi::CStr) -> ngx_command_t {
    directive::<conf::ExecDirective, ExecAppConf>(name, RSA | MORE, RTMP_APP_CONF_OFFSET)
}

static mut EXEC_COMMANDS: [ngx_command_t; 14] = [
    line(c"exec"),
    line(c"exec_push"),
    line(c"exec_pull"),
    line(c"exec_publish"),
    line(c"exec_publish_done"),
    line(c"exec_play"),
    line(c"exec_play_done"),
    line(c"exec_record_done"),
    directive::<conf::ExecStatic, ExecMainConf>(c"exec_static", RSA | MORE, RTMP_MAIN_CONF_OFFSET),
    slot!(ExecAppConf, respawn, c"respawn", RSA | FLAG, RTMP_APP_CONF_OFFSET),
    slot!(ExecAppConf, options, c"exec_options", RSA | FLAG, RTMP_APP_CONF_OFFSET),
    slot!(ExecMainConf, respawn_timeout, c"respawn_timeout", RSA | TAKE1, RTMP_MAIN_CONF_OFFSET),
    slot!(ExecMainConf, kill_signal, c"exec_kill_signal", RSA | TAKE1, RTMP_MAIN_CONF_OFFSET),
    ngx_command_t::empty(),
];

/// The running configuration's exec settings (None without an `rtmp{}` block).
fn running_main() -> Option<&'static ExecMainConf> {
    crate::core::running_servers().first().map(|s| s.main::<ExecModule>())
}

impl WorkerHooks for ExecModule {
    fn init() {
        start_worker();
    }
    fn exit() {
        children::stop_all();
    }
}

fn start_worker() {
    let Some(main) = running_main() else { return };
    if main.used {
        process::reap_own_children();
    }
    // Worker 0 of each generation: after a reload the old worker 0 stops its static children as
    // it starts shutting down (children::poll), the new one starts them.
    if process::worker_number() == 0 && !main.statics.is_empty() {
        log_info!(Log::cycle(), "exec_static: starting {} command(s)", main.statics.len());
        for line in &main.statics {
            let cmd = children::Prepared::new("exec_static".to_string(), &line.cmd, &line.args, None);
            children::start(children::Kind::Static, cmd, Some(main.respawn_ms()), main.kill_signal());
        }
    }
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_exec_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(EXEC_CTX) as *mut _,
    commands: addr_of_mut!(EXEC_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    init_process: Some(init_process::<ExecModule>),
    exit_process: Some(exit_process::<ExecModule>),
    ..ngx_module_t::default()
};
