//! Links between workers: every worker listens on a private unix socket per `server{}` (mode
//! 0600, named by its pid, so reloads and crashes never hand a socket to the wrong process), and
//! connections there are internal sessions (`Session::internal`). The relay module uses them to
//! pull a stream from the worker that has its publisher. The C module's top-level
//! `rtmp_auto_push*` and `rtmp_socket_dir` directives live here.

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_core_module_t, ngx_module_t, ngx_str_t, NGX_CORE_MODULE};

use crate::log_info;
use crate::ngx::conf::Msec;
use crate::ngx::listen;
use crate::ngx::log::Log;
use crate::ngx::module::{core_conf, core_create_conf, exit_process, init_process, WorkerHooks};
use crate::slot;

use super::running_servers;
use super::session::LinkStarter;

#[derive(Default)]
pub struct WorkersConf {
    /// Accepted for nginx-rtmp-module configs: streams are shared between workers either way.
    pub auto_push: Option<bool>,
    /// How soon a worker tries again to pull a stream from another worker.
    pub auto_push_reconnect: Option<Msec>,
    pub socket_dir: Option<String>,
}

fn conf() -> Option<&'static WorkersConf> {
    // SAFETY: nginx writes the module index only while loading configuration.
    core_conf::<WorkersConf>(unsafe { &*addr_of!(ngx_rtmp_rs_workers_module) })
}

/// `rtmp_auto_push_reconnect` (100 ms by default, as in the C module).
pub fn reconnect_ms() -> u64 {
    conf().and_then(|c| c.auto_push_reconnect).map_or(100, |m| m.0.max(10))
}

/// The link socket of worker `pid` for the `server{}` at index `srv`.
pub fn link_path(pid: u64, srv: usize) -> String {
    let dir = conf().and_then(|c| c.socket_dir.as_deref()).unwrap_or("/tmp");
    format!("{}/ngx-rtmp-rs.{pid}.{srv}.sock", dir.trim_end_matches('/'))
}

/// Link sockets of workers that died without removing theirs (SIGKILL, a crash).
fn remove_stale_sockets() {
    let dir = conf().and_then(|c| c.socket_dir.as_deref()).unwrap_or("/tmp");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("ngx-rtmp-rs.").and_then(|r| r.strip_suffix(".sock")) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u64>().ok()) else { continue };
        if !crate::ngx::process::alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub fn pid() -> u64 {
    std::process::id() as u64
}

pub struct WorkersModule;

impl WorkerHooks for WorkersModule {
    // Even with one worker: after a reload, the old worker serves its publishers until they
    // leave, and the new one pulls from it.
    fn init() {
        remove_stale_sockets();
        for (i, srv) in running_servers().into_iter().enumerate() {
            let path = link_path(pid(), i);
            if let Err(e) = listen::listen_unix_now(&path, srv, listen::on_accept::<LinkStarter>) {
                log_info!(Log::cycle(), "rtmp: worker link: {}; streams published here do not reach other workers", e);
            }
        }
    }
    fn exit() {
        for i in 0..running_servers().len() {
            let _ = std::fs::remove_file(link_path(pid(), i));
        }
    }
}

const MAIN: u32 = nginx_sys::NGX_MAIN_CONF | nginx_sys::NGX_DIRECT_CONF;

static mut WORKERS_COMMANDS: [ngx_command_t; 4] = [
    slot!(WorkersConf, auto_push, c"rtmp_auto_push", MAIN | nginx_sys::NGX_CONF_FLAG, 0),
    slot!(WorkersConf, auto_push_reconnect, c"rtmp_auto_push_reconnect", MAIN | nginx_sys::NGX_CONF_TAKE1, 0),
    slot!(WorkersConf, socket_dir, c"rtmp_socket_dir", MAIN | nginx_sys::NGX_CONF_TAKE1, 0),
    ngx_command_t::empty(),
];

static mut WORKERS_CTX: ngx_core_module_t = ngx_core_module_t {
    name: ngx_str_t { len: 12, data: c"rtmp_workers".as_ptr() as *mut u8 },
    create_conf: Some(core_create_conf::<WorkersConf>),
    init_conf: None,
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_workers_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(WORKERS_CTX) as *mut _,
    commands: addr_of_mut!(WORKERS_COMMANDS) as *mut _,
    type_: NGX_CORE_MODULE as _,
    init_process: Some(init_process::<WorkersModule>),
    exit_process: Some(exit_process::<WorkersModule>),
    ..ngx_module_t::default()
};
