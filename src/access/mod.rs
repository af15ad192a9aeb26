//! `allow` / `deny publish|play addr|cidr|all`: who may publish or play, by client address
//! (IPv4 and IPv6), first matching rule wins; a refused client gets an error status and is closed.

mod conf;
pub mod rules;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::hooks_mut;
use crate::core::session::Session;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
pub use conf::AccessAppConf;
use rules::Action;

pub struct AccessModule;

impl RtmpModule for AccessModule {
    type MainConf = ();
    type SrvConf = conf::AccessSrvConf;
    type AppConf = AccessAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_access_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.publish.push(publish);
        h.play.push(play);
        Ok(())
    }
}

fn publish(s: &mut Session, req: &PublishReq) -> Step {
    check(s, Action::Publish, req.stream_id, &req.name)
}

fn play(s: &mut Session, req: &PlayReq) -> Step {
    check(s, Action::Play, req.stream_id, &req.name)
}

fn check(s: &mut Session, action: Action, stream_id: u32, name: &str) -> Step {
    let Some(app) = s.app_ctx else { return Step::Continue };
    // A relay's own connection is the server's doing, not a client's: never refused here.
    if s.relay.is_some() {
        return Step::Continue;
    }
    let conf = app.app::<AccessModule>();
    if conf.rules.is_empty() {
        return Step::Continue;
    }
    // Unix-domain clients have no address to match: allowed, as in nginx-rtmp-module.
    let Some(ip) = s.conn.peer_addr() else { return Step::Continue };
    match rules::first_match(&conf.rules, ip, action) {
        Some(rule) if rule.deny => {
            let code = match action {
                Action::Publish => "NetStream.Publish.BadName",
                Action::Play => "NetStream.Play.Failed",
            };
            s.send_status(stream_id, "error", code, "Access denied");
            Step::Close(format!(
                "access: {action} \"{name}\" denied to {} by \"{}\" at {}",
                s.conn.addr_text(),
                rule.text,
                rule.at
            ))
        }
        _ => Step::Continue,
    }
}

static ACCESS_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<AccessModule>();

const TAKE12: u32 = nginx_sys::NGX_CONF_TAKE12;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

static mut ACCESS_COMMANDS: [ngx_command_t; 3] = [
    directive::<conf::Allow, AccessAppConf>(c"allow", RSA | TAKE12, RTMP_APP_CONF_OFFSET),
    directive::<conf::Deny, AccessAppConf>(c"deny", RSA | TAKE12, RTMP_APP_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_access_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(ACCESS_CTX) as *mut _,
    commands: addr_of_mut!(ACCESS_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
