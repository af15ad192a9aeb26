//! `rtmp_control`: the C module's HTTP control API (`/control/drop|redirect|record/...`), acting
//! on the sessions of every worker: the worker that takes the request posts the command on a
//! shared-memory board, each worker runs it on its own sessions and answers with a count. The
//! board outlives reloads, so the sessions old workers keep until they leave are reached too.

mod api;
mod board;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_http_module_t, ngx_module_t};

use crate::ngx::conf::{directive, merge, Conf, Directive};
use crate::ngx::http::{
    http_module_ctx, set_content_handler, HttpModule, HTTP_LOC_CONF, HTTP_MAIN_CONF, HTTP_SRV_CONF, LOC_CONF_OFFSET,
};
use crate::ngx::module::{exit_process, init_process, Merge, NoConf, RtmpModule, RtmpModuleCtx, WorkerHooks, NGX_RTMP_RS_MODULE};
use crate::ngx::shm::{process_slots, Board};

/// The RTMP side: the shared board and the per-worker poll of it.
pub struct ControlModule;

#[derive(Default)]
pub struct ControlMainConf {
    pub board: Option<Board>,
}

impl Merge for ControlMainConf {}

impl RtmpModule for ControlModule {
    type MainConf = ControlMainConf;
    type SrvConf = NoConf;
    type AppConf = NoConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_control_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let board = Board::declare(cf, c"ngx_rtmp_rs_control", process_slots(cf), Self::module())?;
        crate::ngx::block::current_ctx(cf).main_mut::<ControlModule>(cf).board = Some(board);
        Ok(())
    }
}

static CONTROL_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<ControlModule>();
static mut CONTROL_COMMANDS: [ngx_command_t; 1] = [ngx_command_t::empty()];

impl WorkerHooks for ControlModule {
    fn init() {
        board::start();
    }
    fn exit() {
        board::stop();
    }
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_control_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(CONTROL_CTX) as *mut _,
    commands: addr_of_mut!(CONTROL_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    init_process: Some(init_process::<ControlModule>),
    exit_process: Some(exit_process::<ControlModule>),
    ..ngx_module_t::default()
};

/// The HTTP side: `rtmp_control all|record|drop|redirect ...`.
pub struct ControlHttpModule;

pub const RECORD: u32 = 0x01;
pub const DROP: u32 = 0x02;
pub const REDIRECT: u32 = 0x04;

#[derive(Default)]
pub struct ControlLocConf {
    pub mask: Option<u32>,
}

impl Merge for ControlLocConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.mask, &prev.mask);
        Ok(())
    }
}

impl HttpModule for ControlHttpModule {
    type LocConf = ControlLocConf;
    fn module() -> &'static ngx_module_t {
        // SAFETY: as ControlModule::module.
        unsafe { &*addr_of!(ngx_rtmp_rs_control_http_module) }
    }
}

struct RtmpControl;

impl Directive<ControlLocConf> for RtmpControl {
    fn set(cf: &Conf, conf: &mut ControlLocConf) -> Result<(), String> {
        if conf.mask.is_some() {
            return Err("\"rtmp_control\" directive is duplicate".into());
        }
        let mut mask = 0;
        for a in cf.args() {
            mask |= match a.to_ascii_lowercase().as_slice() {
                b"all" => RECORD | DROP | REDIRECT,
                b"record" => RECORD,
                b"drop" => DROP,
                b"redirect" => REDIRECT,
                _ => {
                    return Err(format!(
                        "invalid value \"{}\" in \"rtmp_control\" directive, it must be \"all\", \"record\", \"drop\" or \"redirect\"",
                        String::from_utf8_lossy(a)
                    ))
                }
            };
        }
        conf.mask = Some(mask);
        set_content_handler::<api::ControlApi>(cf);
        Ok(())
    }
}

static CONTROL_HTTP_CTX: ngx_http_module_t = http_module_ctx::<ControlHttpModule>();

static mut CONTROL_HTTP_COMMANDS: [ngx_command_t; 2] = [
    directive::<RtmpControl, ControlLocConf>(
        c"rtmp_control",
        HTTP_MAIN_CONF | HTTP_SRV_CONF | HTTP_LOC_CONF | nginx_sys::NGX_CONF_1MORE,
        LOC_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_control_http_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(CONTROL_HTTP_CTX) as *mut _,
    commands: addr_of_mut!(CONTROL_HTTP_COMMANDS) as *mut _,
    type_: crate::ngx::http::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
