//! Configuration-time adapter: the `ngx_conf_t` being parsed, typed directive slots with nginx's
//! usual "file:line" errors, and Rust values living in nginx pools.

use std::ffi::{c_char, c_void, CStr};
use std::mem;
use std::ptr;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_pool_t, ngx_str_t, ngx_uint_t, NGX_LOG_EMERG, NGX_LOG_WARN};

pub const NGX_CONF_ERROR_PTR: *mut c_char = usize::MAX as *mut c_char;
pub const NGX_CONF_OK: *mut c_char = ptr::null_mut();

/// The configuration being parsed.
pub struct Conf(*mut ngx_conf_t);

impl Conf {
    /// # Safety
    /// `cf` is the conf nginx handed to a directive or ctx callback.
    pub unsafe fn from_raw(cf: *mut ngx_conf_t) -> Self {
        Conf(cf)
    }
    pub fn raw(&self) -> *mut ngx_conf_t {
        self.0
    }
    /// The directive's arguments, without its name.
    pub fn args(&self) -> Vec<&[u8]> {
        // SAFETY: cf->args is an array of ngx_str_t filled by the parser for this directive.
        unsafe {
            let a = (*self.0).args;
            let elts = (*a).elts as *const ngx_str_t;
            (1..(*a).nelts).map(|i| str_bytes(&*elts.add(i))).collect()
        }
    }
    /// The directive name.
    pub fn name(&self) -> String {
        // SAFETY: as in args(); element 0 is the directive name.
        unsafe {
            let a = (*self.0).args;
            let elts = (*a).elts as *const ngx_str_t;
            String::from_utf8_lossy(str_bytes(&*elts)).into_owned()
        }
    }
    /// Logs at emerg with the current file:line, as nginx does for bad directives.
    pub fn emerg(&self, msg: &str) {
        self.log(NGX_LOG_EMERG as ngx_uint_t, msg);
    }
    pub fn warn(&self, msg: &str) {
        self.log(NGX_LOG_WARN as ngx_uint_t, msg);
    }
    fn log(&self, level: ngx_uint_t, msg: &str) {
        // SAFETY: "%*s" takes (size_t, u_char *); msg outlives the call.
        unsafe {
            nginx_sys::ngx_conf_log_error(level, self.0, 0, c"%*s".as_ptr(), msg.len(), msg.as_ptr());
        }
    }
    pub fn pool(&self) -> *mut ngx_pool_t {
        // SAFETY: valid conf.
        unsafe { (*self.0).pool }
    }
    pub fn ctx(&self) -> *mut c_void {
        // SAFETY: valid conf.
        unsafe { (*self.0).ctx }
    }
    /// `worker_processes` as parsed so far (`auto` is resolved by nginx as it parses it); `None`
    /// while the directive has not been seen (it may come after this block).
    pub fn worker_processes(&self) -> Option<usize> {
        // SAFETY: the core module's conf is created before any block is parsed; it is an
        // ngx_core_conf_t whose worker_processes is NGX_CONF_UNSET (-1) until set.
        unsafe {
            let cycle = (*self.0).cycle;
            let ccf = *(*cycle).conf_ctx.add(nginx_sys::ngx_core_module.index) as *const nginx_sys::ngx_core_conf_t;
            if ccf.is_null() {
                return None;
            }
            usize::try_from((*ccf).worker_processes).ok()
        }
    }

    pub fn alloc<T: 'static>(&self, v: T) -> Option<*mut T> {
        // SAFETY: the configuration pool lives as long as the configuration.
        unsafe { pool_alloc(self.pool(), v) }
    }

    /// A value that lives as long as this configuration (and so as every session using it).
    pub fn alloc_static<T: 'static>(&self, v: T) -> Option<&'static T> {
        // SAFETY: the pool outlives every reader: workers use the configuration of the cycle
        // they run, which is destroyed only after they exit.
        self.alloc(v).map(|p| unsafe { &*p })
    }
}

/// # Safety
/// `s` is a valid ngx_str_t whose data lives as long as the returned slice is used.
pub unsafe fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(s.data, s.len) }
    }
}

/// Allocates `v` in an nginx pool; it is dropped when the pool is destroyed.
///
/// # Safety
/// `pool` must be a live nginx pool.
pub unsafe fn pool_alloc<T: 'static>(pool: *mut ngx_pool_t, v: T) -> Option<*mut T> {
    unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
        // SAFETY: registered only for a value written by pool_alloc::<T>.
        unsafe { ptr::drop_in_place(data as *mut T) }
    }
    // SAFETY: pool is a live nginx pool; memory is aligned for T (checked) and written once.
    unsafe {
        let p = nginx_sys::ngx_pmemalign(pool, mem::size_of::<T>().max(1), mem::align_of::<T>().max(16))
            as *mut T;
        if p.is_null() {
            return None;
        }
        if mem::needs_drop::<T>() {
            let cln = nginx_sys::ngx_pool_cleanup_add(pool, 0);
            if cln.is_null() {
                return None;
            }
            (*cln).handler = Some(drop_value::<T>);
            (*cln).data = p.cast();
        }
        ptr::write(p, v);
        Some(p)
    }
}

/// A value a directive can set: parsed from the directive's arguments.
pub trait ConfValue: Sized + 'static {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr>;
}

/// Milliseconds, parsed like nginx's time values ("30s", "500ms", "1m").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Msec(pub u64);
/// Bytes, parsed like nginx's sizes ("4096", "1m", "512k").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Size(pub u64);

fn one(args: &[&[u8]]) -> Result<Vec<u8>, &'static CStr> {
    match args {
        [a] => Ok(a.to_vec()),
        _ => Err(c"invalid number of arguments"),
    }
}

impl ConfValue for bool {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        match one(args)?.to_ascii_lowercase().as_slice() {
            b"on" => Ok(true),
            b"off" => Ok(false),
            _ => Err(c"invalid value, it must be \"on\" or \"off\""),
        }
    }
}

impl ConfValue for Msec {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        let mut v = one(args)?;
        let mut s = ngx_str_t { len: v.len(), data: v.as_mut_ptr() };
        // SAFETY: ngx_parse_time only reads `len` bytes of `data`.
        let n = unsafe { nginx_sys::ngx_parse_time(&mut s, 0) };
        if n < 0 {
            return Err(c"invalid value");
        }
        Ok(Msec(n as u64))
    }
}

impl ConfValue for Size {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        let mut v = one(args)?;
        let mut s = ngx_str_t { len: v.len(), data: v.as_mut_ptr() };
        // SAFETY: ngx_parse_size only reads `len` bytes of `data`.
        let n = unsafe { nginx_sys::ngx_parse_size(&mut s) };
        if n < 0 {
            return Err(c"invalid value");
        }
        Ok(Size(n as u64))
    }
}

impl ConfValue for u64 {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        let v = one(args)?;
        std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).ok_or(c"invalid number")
    }
}

impl ConfValue for String {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        Ok(String::from_utf8_lossy(&one(args)?).into_owned())
    }
}

/// All arguments as strings (for directives taking a list, like `exec`, `push`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words(pub Vec<String>);
impl ConfValue for Words {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        Ok(Words(args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()))
    }
}

/// Keyword values (`meta on|copy|off`): implement for a Copy enum.
pub trait Keyword: Copy + 'static {
    const WORDS: &'static [(&'static str, Self)];
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kw<E: Keyword>(pub E);
impl<E: Keyword> ConfValue for Kw<E> {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        let v = one(args)?;
        E::WORDS
            .iter()
            .find(|(w, _)| w.as_bytes().eq_ignore_ascii_case(&v))
            .map(|(_, e)| Kw(*e))
            .ok_or(c"invalid value")
    }
}

/// Values that may be `off` (e.g. `drop_idle_publisher off|30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);
impl<T: ConfValue> ConfValue for OrOff<T> {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        if let [a] = args {
            if a.eq_ignore_ascii_case(b"off") {
                return Ok(OrOff(None));
            }
        }
        T::parse(args).map(|v| OrOff(Some(v)))
    }
}

/// A directive that stores into an `Option<T>` field of the module's conf struct at `cmd->offset`.
///
/// # Safety
/// Called by nginx with `conf` pointing at the conf struct the command table was built for, and
/// `cmd->offset` = the offset of an `Option<T>` field in it (guaranteed by `slot()`).
pub unsafe extern "C" fn set_slot<T: ConfValue>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        let field = (conf as *mut u8).add((*cmd).offset) as *mut Option<T>;
        if (*field).is_some() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        let cf = Conf::from_raw(cf);
        match T::parse(&cf.args()) {
            Ok(v) => {
                *field = Some(v);
                NGX_CONF_OK
            }
            Err(msg) => {
                cf.emerg(&value_error(&cf, msg));
                NGX_CONF_ERROR_PTR
            }
        }
    }
}

/// nginx's wording for a rejected value: `invalid value "x" in "name" directive, it must be ...`.
fn value_error(cf: &Conf, msg: &CStr) -> String {
    let msg = msg.to_string_lossy();
    let value = cf.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ");
    match msg.strip_prefix("invalid value") {
        Some(rest) => format!("invalid value \"{value}\" in \"{}\" directive{rest}", cf.name()),
        None => format!("\"{}\" directive {msg}", cf.name()),
    }
}

/// As `set_slot`, and warns that the directive is accepted but not implemented yet.
///
/// # Safety
/// See `set_slot`.
pub unsafe extern "C" fn set_slot_unimplemented<T: ConfValue>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        let rv = set_slot::<T>(cf, cmd, conf);
        if rv.is_null() {
            let c = Conf::from_raw(cf);
            c.warn(&format!("\"{}\" is not implemented yet and has no effect", c.name()));
        }
        rv
    }
}

/// A directive accepted for compatibility whose arguments are not stored (block-less, any args).
///
/// # Safety
/// Called by nginx's parser.
pub unsafe extern "C" fn set_ignored(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    let c = unsafe { Conf::from_raw(cf) };
    c.warn(&format!("\"{}\" is not implemented yet and has no effect", c.name()));
    NGX_CONF_OK
}

pub type SetFn = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// Builds a command whose slot type is checked against the field type: `field` must be a
/// non-capturing closure `|c: &Conf| &c.field` and `offset` the same field's `offset_of!`.
pub const fn slot<C, T: ConfValue>(
    name: &'static CStr,
    type_: u32,
    conf: usize,
    offset: usize,
    _field: fn(&C) -> &Option<T>,
    implemented: bool,
) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 },
        type_: type_ as ngx_uint_t,
        set: Some(if implemented { set_slot::<T> } else { set_slot_unimplemented::<T> }),
        conf: conf as ngx_uint_t,
        offset: offset as ngx_uint_t,
        post: ptr::null_mut(),
    }
}

/// A command with its own handler (blocks, `listen`, …).
pub const fn command(name: &'static CStr, type_: u32, conf: usize, set: SetFn) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: conf as ngx_uint_t,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// `Option` merge as nginx's `ngx_conf_merge_*_value`: an unset child takes its parent's value.
pub fn merge<T: Clone>(conf: &mut Option<T>, prev: &Option<T>) {
    if conf.is_none() {
        *conf = prev.clone();
    }
}

/// Declares a conf struct's slot commands: `slot!(Conf, field: Type, "name", CONTEXTS|ARGS)`.
#[macro_export]
macro_rules! slot {
    ($conf:ty, $field:ident, $name:literal, $type:expr, $level:expr) => {
        $crate::ngx::conf::slot::<$conf, _>(
            $name, $type, $level, ::std::mem::offset_of!($conf, $field), |c: &$conf| &c.$field, true,
        )
    };
    ($conf:ty, $field:ident, $name:literal, $type:expr, $level:expr, unimplemented) => {
        $crate::ngx::conf::slot::<$conf, _>(
            $name, $type, $level, ::std::mem::offset_of!($conf, $field), |c: &$conf| &c.$field, false,
        )
    };
}

/// A directive with its own logic (blocks, `listen`, …) on the conf struct `C` of its level.
pub trait Directive<C: 'static> {
    fn set(cf: &Conf, conf: &mut C) -> Result<(), String>;
}

/// # Safety
/// Called by nginx with `conf` pointing at a `C` (the module's conf at the command's level).
pub unsafe extern "C" fn set_directive<D: Directive<C>, C: 'static>(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let cf = unsafe { Conf::from_raw(cf) };
    // SAFETY: see the function contract.
    let conf = unsafe { &mut *(conf as *mut C) };
    match D::set(&cf, conf) {
        Ok(()) => NGX_CONF_OK,
        Err(msg) if msg.is_empty() => NGX_CONF_ERROR_PTR,
        Err(msg) => {
            cf.emerg(&msg);
            NGX_CONF_ERROR_PTR
        }
    }
}

pub const fn directive<D: Directive<C>, C: 'static>(name: &'static CStr, type_: u32, conf: usize) -> ngx_command_t {
    command(name, type_, conf, set_directive::<D, C>)
}

impl Conf {
    /// A path resolved as nginx resolves them (relative to the prefix), without creating or
    /// registering anything (`directory` registers a missing one to be created).
    pub fn full_name(&self, path: &str) -> Result<String, String> {
        let mut bytes = path.as_bytes().to_vec();
        // SAFETY: as in `directory`: the result lives in the cycle pool, the input is read only.
        unsafe {
            let mut s = ngx_str_t { len: bytes.len(), data: bytes.as_mut_ptr() };
            if nginx_sys::ngx_conf_full_name((*self.0).cycle, &mut s, 0) != 0 {
                return Err(format!("cannot resolve path \"{path}\""));
            }
            Ok(String::from_utf8_lossy(str_bytes(&s)).into_owned())
        }
    }

    /// A directory path as nginx resolves them: relative to the prefix. When it does not exist
    /// yet, it is registered with nginx's paths so the master creates it at start, owned by the
    /// worker user (as nginx does for its temp paths); an existing directory is left as it is.
    pub fn directory(&self, path: &str) -> Result<String, String> {
        let mut bytes = path.as_bytes().to_vec();
        // SAFETY: cf->cycle is the cycle being configured; ngx_conf_full_name allocates the result
        // in the cycle pool and only reads `len` bytes of the input.
        let full = unsafe {
            let mut s = ngx_str_t { len: bytes.len(), data: bytes.as_mut_ptr() };
            if nginx_sys::ngx_conf_full_name((*self.0).cycle, &mut s, 0) != 0 {
                return Err(format!("cannot resolve path \"{path}\""));
            }
            String::from_utf8_lossy(str_bytes(&s)).into_owned()
        };
        let full = full.trim_end_matches('/').to_string();
        let full = if full.is_empty() { "/".to_string() } else { full };
        if std::path::Path::new(&full).exists() {
            return Ok(full);
        }
        // nginx creates each registered path with one mkdir(): register the missing parents
        // first, outermost first, so that `a/b/c` works when `a` does not exist yet.
        if let Some(parent) = std::path::Path::new(&full).parent() {
            let parent = parent.to_string_lossy().into_owned();
            if !parent.is_empty() && parent != "/" && !std::path::Path::new(&parent).exists() {
                self.directory(&parent)?;
            }
        }
        let mut name = full.clone().into_bytes();
        name.push(0);
        let name = self.alloc(name).ok_or("out of memory")?;
        // SAFETY: the path struct and its name live in the configuration pool as long as the
        // cycle; conf_file is the file being parsed (nginx keeps it for its messages).
        unsafe {
            let p = nginx_sys::ngx_pcalloc(self.pool(), mem::size_of::<nginx_sys::ngx_path_t>())
                as *mut nginx_sys::ngx_path_t;
            if p.is_null() {
                return Err("out of memory".into());
            }
            (*p).name = ngx_str_t { len: (*name).len() - 1, data: (*name).as_mut_ptr() };
            let file = (*self.0).conf_file;
            if !file.is_null() {
                (*p).conf_file = (*file).file.name.data;
                (*p).line = (*file).line;
            }
            let mut slot = p;
            if nginx_sys::ngx_add_path(self.0, &mut slot) != 0 {
                return Err(format!("cannot use \"{full}\" as a directory"));
            }
        }
        Ok(full)
    }
}
