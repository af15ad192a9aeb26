//! `record`: (being built).

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::ngx::module::{NoConf, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE};

pub struct RecordModule;

impl RtmpModule for RecordModule {
    type MainConf = NoConf;
    type SrvConf = NoConf;
    type AppConf = NoConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_record_module) }
    }
}

static RECORD_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<RecordModule>();
static mut RECORD_COMMANDS: [ngx_command_t; 1] = [ngx_command_t::empty()];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_record_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(RECORD_CTX) as *mut _,
    commands: addr_of_mut!(RECORD_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
