//! Our nginx module type: the RTMP modules have their own type magic and main/srv/app conf levels,
//! the way `ngx_stream` modules do; this file turns a safe `RtmpModule` impl into nginx's C tables.

use std::ffi::{c_char, c_void};
use std::ptr;

use nginx_sys::{ngx_conf_t, ngx_int_t, ngx_module_t, ngx_uint_t};

use super::conf::{pool_alloc, Conf, NGX_CONF_ERROR_PTR};

/// Module type of every RTMP module of this library: "RTRS", deliberately not the C module's
/// `0x504D5452`, so both can never mistake each other's modules.
pub const NGX_RTMP_RS_MODULE: ngx_uint_t = 0x5352_5452;

/// `cmd->type` bits saying where a directive may appear (above nginx's own NGX_MAIN_CONF bit).
pub const RTMP_MAIN_CONF: u32 = 0x0200_0000;
pub const RTMP_SRV_CONF: u32 = 0x0400_0000;
pub const RTMP_APP_CONF: u32 = 0x0800_0000;

/// `cmd->conf`: offsets of the three arrays inside `RtmpConfCtx`.
pub const RTMP_MAIN_CONF_OFFSET: usize = std::mem::offset_of!(RtmpConfCtx, main_conf);
pub const RTMP_SRV_CONF_OFFSET: usize = std::mem::offset_of!(RtmpConfCtx, srv_conf);
pub const RTMP_APP_CONF_OFFSET: usize = std::mem::offset_of!(RtmpConfCtx, app_conf);

/// The conf context of one level (`rtmp{}`, a `server{}` or an `application{}`): one conf pointer
/// per RTMP module (indexed by its ctx_index) at each level, as `ngx_stream_conf_ctx_t`.
#[repr(C)]
pub struct RtmpConfCtx {
    pub main_conf: *mut *mut c_void,
    pub srv_conf: *mut *mut c_void,
    pub app_conf: *mut *mut c_void,
}

/// A conf context that lives as long as its cycle's pool, i.e. for every connection of the worker
/// that was started with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtxRef(*mut RtmpConfCtx);

impl CtxRef {
    /// # Safety
    /// `p` points to a fully built `RtmpConfCtx` in a cycle pool.
    pub unsafe fn from_raw(p: *mut RtmpConfCtx) -> Self {
        CtxRef(p)
    }
    pub fn as_ptr(self) -> *mut RtmpConfCtx {
        self.0
    }
    /// A stable identity of this level (used as a key, e.g. for the application of a stream).
    pub fn id(self) -> usize {
        self.0 as usize
    }
    pub fn main<M: RtmpModule>(self) -> &'static M::MainConf {
        // SAFETY: ctx arrays are filled by the block handlers before any connection exists and
        // the slot of module M holds an M::MainConf (created by create_main_conf::<M>).
        unsafe { &*(*(*self.0).main_conf.add(M::module().ctx_index) as *const M::MainConf) }
    }
    pub fn srv<M: RtmpModule>(self) -> &'static M::SrvConf {
        // SAFETY: as above, for the server level.
        unsafe { &*(*(*self.0).srv_conf.add(M::module().ctx_index) as *const M::SrvConf) }
    }
    pub fn app<M: RtmpModule>(self) -> &'static M::AppConf {
        // SAFETY: as above, for the application level.
        unsafe { &*(*(*self.0).app_conf.add(M::module().ctx_index) as *const M::AppConf) }
    }
}

/// A conf level merges its unset values from its parent.
/// What a module does as a worker process starts and as it exits (nginx's `init_process` and
/// `exit_process`): `init_process: Some(init_process::<M>)` in its module table.
pub trait WorkerHooks {
    fn init() {}
    fn exit() {}
}

pub extern "C" fn init_process<W: WorkerHooks>(_cycle: *mut nginx_sys::ngx_cycle_t) -> ngx_int_t {
    W::init();
    nginx_sys::NGX_OK as ngx_int_t
}

pub extern "C" fn exit_process<W: WorkerHooks>(_cycle: *mut nginx_sys::ngx_cycle_t) {
    W::exit();
}

/// The conf of a level where a module has no directives.
#[derive(Default)]
pub struct NoConf;
impl Merge for NoConf {}

pub trait Merge: Default + 'static {
    fn merge(&mut self, _prev: &Self, _cf: &Conf) -> Result<(), String> {
        Ok(())
    }
}

/// What a feature module declares; the adapter builds the C context table from it.
pub trait RtmpModule: 'static {
    type MainConf: Default + 'static;
    type SrvConf: Merge;
    type AppConf: Merge;

    fn module() -> &'static ngx_module_t;

    /// After all confs are merged: register event hooks here (in module order).
    fn postconfiguration(_cf: &Conf) -> Result<(), String> {
        Ok(())
    }
    fn init_main_conf(_conf: &mut Self::MainConf, _cf: &Conf) -> Result<(), String> {
        Ok(())
    }
}

/// The C layout of an RTMP module's `ctx`, read by the `rtmp{}` block handler.
#[repr(C)]
pub struct RtmpModuleCtx {
    pub preconfiguration: Option<unsafe extern "C" fn(*mut ngx_conf_t) -> ngx_int_t>,
    pub postconfiguration: Option<unsafe extern "C" fn(*mut ngx_conf_t) -> ngx_int_t>,
    pub create_main_conf: Option<unsafe extern "C" fn(*mut ngx_conf_t) -> *mut c_void>,
    pub init_main_conf: Option<unsafe extern "C" fn(*mut ngx_conf_t, *mut c_void) -> *mut c_char>,
    pub create_srv_conf: Option<unsafe extern "C" fn(*mut ngx_conf_t) -> *mut c_void>,
    pub merge_srv_conf:
        Option<unsafe extern "C" fn(*mut ngx_conf_t, *mut c_void, *mut c_void) -> *mut c_char>,
    pub create_app_conf: Option<unsafe extern "C" fn(*mut ngx_conf_t) -> *mut c_void>,
    pub merge_app_conf:
        Option<unsafe extern "C" fn(*mut ngx_conf_t, *mut c_void, *mut c_void) -> *mut c_char>,
}

// SAFETY: the table is immutable function pointers.
unsafe impl Sync for RtmpModuleCtx {}

impl RtmpModuleCtx {
    pub const fn of<M: RtmpModule>() -> Self {
        RtmpModuleCtx {
            preconfiguration: None,
            postconfiguration: Some(postconfiguration::<M>),
            create_main_conf: Some(create_conf::<M::MainConf>),
            init_main_conf: Some(init_main_conf::<M>),
            create_srv_conf: Some(create_conf::<M::SrvConf>),
            merge_srv_conf: Some(merge_conf::<M::SrvConf>),
            create_app_conf: Some(create_conf::<M::AppConf>),
            merge_app_conf: Some(merge_conf::<M::AppConf>),
        }
    }
}

/// `create_conf` of an nginx core module (top-level directives): a `T` in the cycle's pool.
///
/// # Safety
/// Called by nginx with the cycle being configured.
pub unsafe extern "C" fn core_create_conf<T: Default + 'static>(cycle: *mut nginx_sys::ngx_cycle_t) -> *mut c_void {
    // SAFETY: nginx passes the cycle being configured; its pool lives as long as the cycle.
    unsafe { pool_alloc((*cycle).pool, T::default()) }.map_or(ptr::null_mut(), |p| p.cast())
}

/// A core module's conf in the running cycle (None before configuration or if absent).
pub fn core_conf<T: 'static>(module: &'static ngx_module_t) -> Option<&'static T> {
    // SAFETY: conf_ctx has a slot per module index; a core module's holds its create_conf value.
    unsafe {
        let cycle = nginx_sys::ngx_cycle;
        if cycle.is_null() || (*cycle).conf_ctx.is_null() {
            return None;
        }
        let p = *(*cycle).conf_ctx.add(module.index) as *const T;
        p.as_ref()
    }
}

pub(super) unsafe extern "C" fn create_conf<T: Default + 'static>(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes a valid conf being parsed.
    let pool = unsafe { (*cf).pool };
    // SAFETY: the configuration pool is live.
    unsafe { pool_alloc(pool, T::default()) }.map_or(ptr::null_mut(), |p| p.cast())
}

pub(super) unsafe extern "C" fn merge_conf<T: Merge>(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: both pointers come from create_conf::<T> of the same module.
    let (prev, conf) = unsafe { (&*(parent as *const T), &mut *(child as *mut T)) };
    let cf = unsafe { Conf::from_raw(cf) };
    match conf.merge(prev, &cf) {
        Ok(()) => ptr::null_mut(),
        Err(msg) => {
            cf.emerg(&msg);
            NGX_CONF_ERROR_PTR
        }
    }
}

unsafe extern "C" fn init_main_conf<M: RtmpModule>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf comes from create_conf::<M::MainConf>.
    let conf = unsafe { &mut *(conf as *mut M::MainConf) };
    let cf = unsafe { Conf::from_raw(cf) };
    match M::init_main_conf(conf, &cf) {
        Ok(()) => ptr::null_mut(),
        Err(msg) => {
            cf.emerg(&msg);
            NGX_CONF_ERROR_PTR
        }
    }
}

unsafe extern "C" fn postconfiguration<M: RtmpModule>(cf: *mut ngx_conf_t) -> ngx_int_t {
    let cf = unsafe { Conf::from_raw(cf) };
    match M::postconfiguration(&cf) {
        Ok(()) => nginx_sys::NGX_OK as ngx_int_t,
        Err(msg) => {
            cf.emerg(&msg);
            nginx_sys::NGX_ERROR as ngx_int_t
        }
    }
}

/// Iterates the RTMP modules of a cycle being configured, with their C ctx tables.
pub fn rtmp_modules(cf: &Conf) -> Vec<(&'static ngx_module_t, &'static RtmpModuleCtx)> {
    let mut out = Vec::new();
    // SAFETY: cycle->modules is a null-terminated array of valid modules during configuration.
    unsafe {
        let cycle = (*cf.raw()).cycle;
        let mut m = (*cycle).modules;
        while !(*m).is_null() {
            let module = &**m;
            if module.type_ == NGX_RTMP_RS_MODULE && !module.ctx.is_null() {
                out.push((module, &*(module.ctx as *const RtmpModuleCtx)));
            }
            m = m.add(1);
        }
    }
    out
}

impl CtxRef {
    /// Mutable main conf, only while the configuration is being built (single-threaded, before
    /// any connection can read it).
    pub fn main_mut<M: RtmpModule>(self, _cf: &Conf) -> &'static mut M::MainConf {
        // SAFETY: as main(); the &Conf argument witnesses configuration time.
        unsafe { &mut *(*(*self.0).main_conf.add(M::module().ctx_index) as *mut M::MainConf) }
    }
    pub fn srv_mut<M: RtmpModule>(self, _cf: &Conf) -> &'static mut M::SrvConf {
        // SAFETY: as srv(); configuration time only.
        unsafe { &mut *(*(*self.0).srv_conf.add(M::module().ctx_index) as *mut M::SrvConf) }
    }
}

/// The app-level conf of module M in `ctx`, mutable during configuration.
pub fn app_conf_mut<M: RtmpModule>(ctx: CtxRef, _cf: &Conf) -> &'static mut M::AppConf {
    // SAFETY: configuration time; the slot holds an M::AppConf.
    unsafe { &mut *(*(*ctx.0).app_conf.add(M::module().ctx_index) as *mut M::AppConf) }
}
