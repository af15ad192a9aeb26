//! The conf-level machinery of `rtmp{}`: creating the main/srv/app conf contexts of every RTMP
//! module, parsing a nested block with them, and running init/merge/postconfiguration in
//! nginx's order.

use std::ffi::{c_char, c_void};
use std::ptr;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_uint_t};

use super::conf::{Conf, NGX_CONF_ERROR_PTR, NGX_CONF_OK};
use super::module::{rtmp_modules, CtxRef, RtmpConfCtx, NGX_RTMP_RS_MODULE};

/// Which level a new context is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Main,
    Srv,
    App,
}

fn conf_array(cf: &Conf, n: usize) -> Result<*mut *mut c_void, String> {
    // SAFETY: pool allocation of n zeroed pointers.
    let p = unsafe { nginx_sys::ngx_pcalloc(cf.pool(), n.max(1) * std::mem::size_of::<*mut c_void>()) };
    if p.is_null() {
        Err("out of memory".into())
    } else {
        Ok(p.cast())
    }
}

fn module_count(cf: &Conf) -> usize {
    // SAFETY: assigns ctx_index to every RTMP module of the cycle and returns their count.
    unsafe { nginx_sys::ngx_count_modules((*cf.raw()).cycle, NGX_RTMP_RS_MODULE) as usize }
}

/// Creates a conf context for `level`; the levels above are shared with `parent`.
pub fn new_ctx(cf: &Conf, level: Level, parent: Option<CtxRef>) -> Result<CtxRef, String> {
    let n = if level == Level::Main { module_count(cf) } else { rtmp_modules(cf).len() };
    let ctx = cf
        .alloc(RtmpConfCtx { main_conf: ptr::null_mut(), srv_conf: ptr::null_mut(), app_conf: ptr::null_mut() })
        .ok_or("out of memory")?;
    // SAFETY: ctx is freshly allocated; parent (if any) is a complete context; each module's
    // create_* returns its conf struct which we store at its ctx_index.
    unsafe {
        if let Some(p) = parent {
            (*ctx).main_conf = (*p.as_ptr()).main_conf;
            (*ctx).srv_conf = (*p.as_ptr()).srv_conf;
        }
        if level == Level::Main {
            (*ctx).main_conf = conf_array(cf, n)?;
        }
        if level != Level::App {
            (*ctx).srv_conf = conf_array(cf, n)?;
        }
        (*ctx).app_conf = conf_array(cf, n)?;
        for (m, mctx) in rtmp_modules(cf) {
            let i = m.ctx_index;
            if level == Level::Main {
                if let Some(f) = mctx.create_main_conf {
                    let c = f(cf.raw());
                    if c.is_null() {
                        return Err("out of memory".into());
                    }
                    *(*ctx).main_conf.add(i) = c;
                }
            }
            if level != Level::App {
                if let Some(f) = mctx.create_srv_conf {
                    let c = f(cf.raw());
                    if c.is_null() {
                        return Err("out of memory".into());
                    }
                    *(*ctx).srv_conf.add(i) = c;
                }
            }
            if let Some(f) = mctx.create_app_conf {
                let c = f(cf.raw());
                if c.is_null() {
                    return Err("out of memory".into());
                }
                *(*ctx).app_conf.add(i) = c;
            }
        }
        Ok(CtxRef::from_raw(ctx))
    }
}

/// Parses the block that follows the current directive with `ctx` as the context, allowing the
/// directives of `level`.
pub fn parse_block(cf: &Conf, ctx: CtxRef, level: Level) -> Result<(), String> {
    let bits = match level {
        Level::Main => super::module::RTMP_MAIN_CONF,
        Level::Srv => super::module::RTMP_SRV_CONF,
        Level::App => super::module::RTMP_APP_CONF,
    };
    // SAFETY: the classic nginx pattern: save *cf, switch ctx and allowed directive types, parse
    // the block, restore.
    unsafe {
        let raw = cf.raw();
        let saved = ptr::read(raw);
        (*raw).ctx = ctx.as_ptr().cast();
        (*raw).module_type = NGX_RTMP_RS_MODULE;
        (*raw).cmd_type = bits as ngx_uint_t;
        let rv = nginx_sys::ngx_conf_parse(raw, ptr::null_mut());
        ptr::write(raw, saved);
        if rv.is_null() {
            Ok(())
        } else {
            // nginx has already logged the reason with file:line.
            Err(String::new())
        }
    }
}

/// Runs every RTMP module's preconfiguration.
pub fn preconfiguration(cf: &Conf) -> Result<(), String> {
    for (_, mctx) in rtmp_modules(cf) {
        if let Some(f) = mctx.preconfiguration {
            // SAFETY: module callback with the conf being parsed.
            if unsafe { f(cf.raw()) } != 0 {
                return Err(String::new());
            }
        }
    }
    Ok(())
}

/// Runs every RTMP module's postconfiguration (in module order: hooks register in that order).
pub fn postconfiguration(cf: &Conf, main: CtxRef) -> Result<(), String> {
    with_ctx(cf, main, || {
        for (_, mctx) in rtmp_modules(cf) {
            if let Some(f) = mctx.postconfiguration {
                // SAFETY: module callback with the conf being parsed.
                if unsafe { f(cf.raw()) } != 0 {
                    return Err(String::new());
                }
            }
        }
        Ok(())
    })
}

/// Runs every module's init_main_conf.
pub fn init_main(cf: &Conf, main: CtxRef) -> Result<(), String> {
    with_ctx(cf, main, || {
        for (m, mctx) in rtmp_modules(cf) {
            if let Some(f) = mctx.init_main_conf {
                // SAFETY: module callback with its own main conf.
                let rv = unsafe { f(cf.raw(), *(*main.as_ptr()).main_conf.add(m.ctx_index)) };
                if !rv.is_null() {
                    return Err(String::new());
                }
            }
        }
        Ok(())
    })
}

/// Merges `child`'s srv confs (if `srv`) and app confs from `parent`'s.
pub fn merge(cf: &Conf, parent: CtxRef, child: CtxRef, srv: bool) -> Result<(), String> {
    with_ctx(cf, child, || {
        for (m, mctx) in rtmp_modules(cf) {
            let i = m.ctx_index;
            // SAFETY: both contexts are complete; merge callbacks get the module's confs.
            unsafe {
                let (p, c) = (&*parent.as_ptr(), &*child.as_ptr());
                if srv {
                    if let Some(f) = mctx.merge_srv_conf {
                        if !f(cf.raw(), *p.srv_conf.add(i), *c.srv_conf.add(i)).is_null() {
                            return Err(String::new());
                        }
                    }
                }
                if let Some(f) = mctx.merge_app_conf {
                    if !f(cf.raw(), *p.app_conf.add(i), *c.app_conf.add(i)).is_null() {
                        return Err(String::new());
                    }
                }
            }
        }
        Ok(())
    })
}

fn with_ctx<R>(cf: &Conf, ctx: CtxRef, f: impl FnOnce() -> R) -> R {
    // SAFETY: temporarily point cf->ctx at ctx, as ngx_stream_block does around merges.
    unsafe {
        let raw = cf.raw();
        let saved = (*raw).ctx;
        (*raw).ctx = ctx.as_ptr().cast();
        let r = f();
        (*raw).ctx = saved;
        r
    }
}

/// A root block directive (`rtmp {}`), stored in the core module's slot of the cycle conf.
pub trait RootBlock {
    fn parse(cf: &Conf) -> Result<CtxRef, String>;
}

/// # Safety
/// Used only as the `set` of a NGX_MAIN_CONF command: `conf` is the module's `void **` slot.
pub unsafe extern "C" fn set_root_block<B: RootBlock>(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        let slot = conf as *mut *mut c_void;
        if !(*slot).is_null() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        let cf = Conf::from_raw(cf);
        match B::parse(&cf) {
            Ok(ctx) => {
                *slot = ctx.as_ptr().cast();
                NGX_CONF_OK
            }
            Err(msg) => {
                if !msg.is_empty() {
                    cf.emerg(&msg);
                }
                NGX_CONF_ERROR_PTR
            }
        }
    }
}

/// The context the current directive is being parsed in.
pub fn current_ctx(cf: &Conf) -> CtxRef {
    // SAFETY: inside rtmp{} cf->ctx is always an RtmpConfCtx (set by parse_block).
    unsafe { CtxRef::from_raw(cf.ctx().cast()) }
}

/// The `rtmp{}` block's main context in the running cycle, for the HTTP side (stat, HTTP-FLV);
/// `None` when the configuration has no `rtmp{}`.
pub fn running_root(root: &'static nginx_sys::ngx_module_t) -> Option<CtxRef> {
    // SAFETY: ngx_cycle is the running cycle; conf_ctx has a slot per module index, which holds
    // what set_root_block stored (or null).
    unsafe {
        let cycle = nginx_sys::ngx_cycle;
        if cycle.is_null() || (*cycle).conf_ctx.is_null() {
            return None;
        }
        let slot = *(*cycle).conf_ctx.add(root.index) as *mut super::module::RtmpConfCtx;
        (!slot.is_null()).then(|| CtxRef::from_raw(slot))
    }
}
