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

/// Shared memory with one slot per worker process, where each worker publishes a blob (its stat
/// snapshot) that any worker can read: a sequence number around each write lets readers retry
/// a copy that raced with one.
pub struct SlotZone {
    zone: NonNull<ngx_shm_zone_t>,
    slots: usize,
    slot_size: usize,
}

/// The head of a slot, followed by `slot_size` bytes of data.
#[repr(C)]
struct SlotHead {
    /// Odd while the owner writes.
    seq: std::sync::atomic::AtomicU64,
    len: std::sync::atomic::AtomicU64,
    pid: std::sync::atomic::AtomicU64,
}

const HEAD: usize = std::mem::size_of::<SlotHead>();

impl SlotZone {
    /// Declares the zone `name` for `slots` workers of `slot_size` bytes each, owned by `tag`.
    /// Every cycle gets a fresh zone (`noreuse`): workers of an old cycle still shutting down
    /// never write into the new workers' slots.
    pub fn declare(cf: &Conf, name: &'static CStr, slots: usize, slot_size: usize, tag: *mut c_void) -> Result<Self, String> {
        let mut s = ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 };
        let total = slots * (HEAD + slot_size);
        // The slab pool's own header and page table take about 1/170 of the zone, plus alignment.
        // SAFETY: as in SharedCounter::declare.
        unsafe {
            let page = nginx_sys::ngx_pagesize;
            let size = (total + total / 64 + 16 * page).div_ceil(page) * page;
            let zone = NonNull::new(nginx_sys::ngx_shared_memory_add(cf.raw(), &mut s, size, tag))
                .ok_or_else(|| format!("cannot declare the shared memory zone \"{}\"", name.to_string_lossy()))?;
            (*zone.as_ptr()).init = Some(init_slots);
            (*zone.as_ptr()).noreuse = 1;
            // Until init runs, data carries the byte count init allocates.
            (*zone.as_ptr()).data = total as *mut c_void;
            Ok(SlotZone { zone, slots, slot_size })
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn base(&self) -> Option<*mut u8> {
        // SAFETY: zone->data is null until init ran, then the block init_slots allocated.
        let p = unsafe { (*self.zone.as_ptr()).data } as *mut u8;
        (!p.is_null()).then_some(p)
    }

    fn slot(&self, i: usize) -> Option<(*const SlotHead, *mut u8)> {
        if i >= self.slots {
            return None;
        }
        let base = self.base()?;
        // SAFETY: init_slots allocated slots * (HEAD + slot_size) bytes, 8-aligned (slab pages).
        unsafe {
            let p = base.add(i * (HEAD + self.slot_size));
            Some((p as *const SlotHead, p.add(HEAD)))
        }
    }

    /// Publishes `data` in slot `i`; false if it does not fit (the slot keeps its old blob).
    pub fn write(&self, i: usize, pid: u64, data: &[u8]) -> bool {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let Some((head, body)) = self.slot(i) else { return false };
        if data.len() > self.slot_size {
            return false;
        }
        // SAFETY: only worker `i` writes slot `i`; readers detect a concurrent write by seq.
        unsafe {
            let h = &*head;
            let s = h.seq.load(Acquire);
            h.seq.store(s | 1, Release);
            std::sync::atomic::fence(Release);
            std::ptr::copy_nonoverlapping(data.as_ptr(), body, data.len());
            h.len.store(data.len() as u64, Release);
            h.pid.store(pid, Release);
            h.seq.store((s | 1) + 1, Release);
        }
        true
    }

    /// Empties slot `i` (its worker exits).
    pub fn clear(&self, i: usize) {
        self.write(i, 0, &[]);
    }

    /// Every non-empty slot other than `except`: (slot, pid, blob).
    pub fn read_others(&self, except: usize) -> Vec<(usize, u64, Vec<u8>)> {
        use std::sync::atomic::Ordering::Acquire;
        let mut out = Vec::new();
        for i in (0..self.slots).filter(|i| *i != except) {
            let Some((head, body)) = self.slot(i) else { continue };
            // SAFETY: a seqlock read: the copy is kept only if no write began or ended during it;
            // lengths are bounded by slot_size.
            unsafe {
                let h = &*head;
                for _ in 0..100 {
                    let s1 = h.seq.load(Acquire);
                    if s1 & 1 == 1 {
                        std::hint::spin_loop();
                        continue;
                    }
                    let len = (h.len.load(Acquire) as usize).min(self.slot_size);
                    let pid = h.pid.load(Acquire);
                    let mut v = vec![0u8; len];
                    std::ptr::copy_nonoverlapping(body, v.as_mut_ptr(), len);
                    std::sync::atomic::fence(Acquire);
                    if h.seq.load(Acquire) == s1 {
                        if len > 0 {
                            out.push((i, pid, v));
                        }
                        break;
                    }
                }
            }
        }
        out
    }
}

unsafe extern "C" fn init_slots(zone: *mut ngx_shm_zone_t, _data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this with the zone it mapped (a slab pool at shm.addr); the zone is
    // never reused across cycles (noreuse), so it is always fresh and `data` is still the size
    // `declare` stored.
    unsafe {
        let pool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        let want = (*zone).data as usize;
        // Fresh shared memory is zeroed: every slot starts empty.
        let p = nginx_sys::ngx_slab_alloc(pool, want) as *mut u8;
        if p.is_null() {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        }
        (*zone).data = p.cast();
        nginx_sys::NGX_OK as ngx_int_t
    }
}
