//! The core of the RTMP side: the `rtmp{}` block and its lifecycle, listeners, connections and
//! the command layer; feature modules (live, …) plug in through `hooks`.

pub mod conf;
pub mod ext;
pub mod hooks;
pub mod link;
pub mod names;
pub mod output;
pub mod peer;
mod rtmp;
pub mod session;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_core_module_t, ngx_module_t, ngx_str_t, NGX_CORE_MODULE};

use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    CtxRef, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET,
    RTMP_MAIN_CONF, RTMP_MAIN_CONF_OFFSET, RTMP_SRV_CONF, RTMP_SRV_CONF_OFFSET,
};
use crate::slot;
use conf::{ApplicationBlock, CoreAppConf, CoreMainConf, CoreSrvConf, Listen, ServerBlock};
use hooks::Hooks;

const BLOCK: u32 = nginx_sys::NGX_CONF_BLOCK;
const NOARGS: u32 = nginx_sys::NGX_CONF_NOARGS;
const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const MORE1: u32 = nginx_sys::NGX_CONF_1MORE;
const RS: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

/// The nginx core module that owns the `rtmp {}` block.
pub struct RtmpBlockModule;

static mut RTMP_BLOCK_COMMANDS: [ngx_command_t; 2] = [
    crate::ngx::conf::command(
        c"rtmp",
        nginx_sys::NGX_MAIN_CONF | BLOCK | NOARGS,
        0,
        crate::ngx::block::set_root_block::<rtmp::RtmpBlock>,
    ),
    ngx_command_t::empty(),
];

static mut RTMP_BLOCK_CTX: ngx_core_module_t = ngx_core_module_t {
    name: ngx_str_t { len: 4, data: c"rtmp".as_ptr() as *mut u8 },
    create_conf: None,
    init_conf: None,
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(RTMP_BLOCK_CTX) as *mut _,
    commands: addr_of_mut!(RTMP_BLOCK_COMMANDS) as *mut _,
    type_: NGX_CORE_MODULE as _,
    ..ngx_module_t::default()
};

/// The RTMP core module: server/application/listen and connection settings.
pub struct CoreModule;

impl RtmpModule for CoreModule {
    type MainConf = CoreMainConf;
    type SrvConf = CoreSrvConf;
    type AppConf = CoreAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_core_module) }
    }
}

static CORE_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<CoreModule>();

static mut CORE_COMMANDS: [ngx_command_t; 19] = [
    directive::<ServerBlock, CoreMainConf>(c"server", RTMP_MAIN_CONF | BLOCK | NOARGS, RTMP_MAIN_CONF_OFFSET),
    directive::<Listen, CoreSrvConf>(c"listen", RTMP_SRV_CONF | MORE1, RTMP_SRV_CONF_OFFSET),
    directive::<ApplicationBlock, CoreSrvConf>(c"application", RTMP_SRV_CONF | BLOCK | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, timeout, c"timeout", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, ping, c"ping", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, ping_timeout, c"ping_timeout", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, max_streams, c"max_streams", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, ack_window, c"ack_window", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, chunk_size, c"chunk_size", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, max_message, c"max_message", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, out_queue, c"out_queue", RS | TAKE1, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, out_cork, c"out_cork", RS | TAKE1, RTMP_SRV_CONF_OFFSET, unimplemented),
    slot!(CoreSrvConf, busy, c"busy", RS | FLAG, RTMP_SRV_CONF_OFFSET, unimplemented),
    slot!(CoreSrvConf, so_keepalive, c"so_keepalive", RS | FLAG, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, tcp_nodelay, c"tcp_nodelay", RS | FLAG, RTMP_SRV_CONF_OFFSET),
    slot!(CoreSrvConf, buflen, c"buflen", RS | TAKE1, RTMP_SRV_CONF_OFFSET, unimplemented),
    // The C module's switches for the extended timestamp in type 3 chunks: our decoder tells
    // whether an encoder repeats it (publish side) and our encoder always repeats it, as FFmpeg
    // and librtmp expect (play side, the C module's default "on").
    slot!(CoreAppConf, play_time_fix, c"play_time_fix", RSA | FLAG, RTMP_APP_CONF_OFFSET),
    slot!(CoreAppConf, publish_time_fix, c"publish_time_fix", RSA | FLAG, RTMP_APP_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_core_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(CORE_CTX) as *mut _,
    commands: addr_of_mut!(CORE_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};

/// The hook lists, for feature modules to register in their postconfiguration.
pub fn hooks_mut(cf: &Conf) -> &'static mut Hooks {
    &mut crate::ngx::block::current_ctx(cf).main_mut::<CoreModule>(cf).hooks
}

/// The hook lists at run time.
pub fn hooks(ctx: CtxRef) -> &'static Hooks {
    &ctx.main::<CoreModule>().hooks
}

/// The hook lists of links between workers (`Session::internal`), for the modules that serve
/// them (live, relay, stat) to register in too.
pub fn internal_hooks_mut(cf: &Conf) -> &'static mut Hooks {
    &mut crate::ngx::block::current_ctx(cf).main_mut::<CoreModule>(cf).internal_hooks
}

pub fn internal_hooks(ctx: CtxRef) -> &'static Hooks {
    &ctx.main::<CoreModule>().internal_hooks
}

/// The `server{}` blocks of the running configuration, for the HTTP side (stat, HTTP-FLV).
pub fn running_servers() -> Vec<CtxRef> {
    // SAFETY: reads the module index nginx assigned at configuration.
    let root = unsafe { &*addr_of!(ngx_rtmp_rs_module) };
    crate::ngx::block::running_root(root).map(|r| r.main::<CoreModule>().servers.clone()).unwrap_or_default()
}

/// The rtmp server listening on `port` (the first server when `port` is `None`).
pub fn server_by_port(port: Option<u16>) -> Option<CtxRef> {
    let servers = running_servers();
    match port {
        None => servers.first().copied(),
        Some(p) => servers.into_iter().find(|s| s.srv::<CoreModule>().listens.iter().any(|l| l.port == p)),
    }
}
