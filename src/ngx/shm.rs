//! Shared memory from safe code: a counter that every worker process sees, kept in an nginx
//! shared memory zone (`ngx_shared_memory_add`), for limits that hold across workers.
//!
//! Reloads: nginx maps a zone with the same name, size and tag at the same address in the new
//! cycle and hands the old zone's data to `init`, so the counter keeps its value and the old
//! workers' sessions, which still run on the old cycle, keep counting in it until they close.
//! A zone that is new (the directive was just added, or its size changed) starts from zero.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, Ordering};

use nginx_sys::{ngx_int_t, ngx_module_t, ngx_shm_zone_t, ngx_slab_pool_t, ngx_str_t};

use super::conf::Conf;

/// A signed 64-bit counter in shared memory. Valid from the end of configuration (when nginx has
/// mapped the zone and run its init) for the whole life of the cycle.
pub struct SharedCounter(NonNull<ngx_shm_zone_t>);

impl SharedCounter {
    /// Declares the zone `name` (two pages, as nginx-rtmp-module's `rtmp_limit`); nginx maps it
    /// once the configuration is read. `tag` is the owning module: another module declaring the
    /// same name fails the configuration.
    pub fn declare(cf: &Conf, name: &'static CStr, tag: &'static ngx_module_t) -> Result<Self, String> {
        let mut s = ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 };
        // SAFETY: cf is the conf being parsed; the name is static; nginx copies the str struct
        // and keeps the pointer to the (static) bytes. ngx_pagesize is set before configuration.
        unsafe {
            let size = 2 * nginx_sys::ngx_pagesize;
            let tag = tag as *const ngx_module_t as *mut c_void;
            let zone = NonNull::new(nginx_sys::ngx_shared_memory_add(cf.raw(), &mut s, size, tag))
                .ok_or_else(|| format!("cannot declare the shared memory zone \"{}\"", name.to_string_lossy()))?;
            (*zone.as_ptr()).init = Some(init_counter);
            Ok(SharedCounter(zone))
        }
    }

    fn cell(&self) -> Option<&AtomicI64> {
        // SAFETY: zone->data is null until init ran, then the counter allocated by
        // init_counter in this zone, which stays mapped in every process of the cycle.
        unsafe { ((*self.0.as_ptr()).data as *const AtomicI64).as_ref() }
    }

    /// Adds `delta` and returns the new value; `None` if the zone is not mapped (never at run
    /// time: nginx does not start a cycle whose zones failed).
    pub fn add(&self, delta: i64) -> Option<i64> {
        self.cell().map(|c| c.fetch_add(delta, Ordering::AcqRel).wrapping_add(delta))
    }

    pub fn get(&self) -> Option<i64> {
        self.cell().map(|c| c.load(Ordering::Acquire))
    }
}

/// The zone's init: a fresh zone gets a zeroed counter from its slab pool; a zone reused by a
/// reload keeps the old cycle's counter (same mapping, same address).
unsafe extern "C" fn init_counter(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this with the zone it mapped (a slab pool at shm.addr) and, on reuse,
    // the old zone's data, i.e. a counter written below in the same shared mapping.
    unsafe {
        if !data.is_null() {
            (*zone).data = data;
            return nginx_sys::NGX_OK as ngx_int_t;
        }
        let pool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        let p = nginx_sys::ngx_slab_alloc(pool, std::mem::size_of::<AtomicI64>()) as *mut AtomicI64;
        if p.is_null() || !p.is_aligned() {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        }
        p.write(AtomicI64::new(0));
        (*zone).data = p.cast();
        nginx_sys::NGX_OK as ngx_int_t
    }
}
