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
///
/// How many slots a zone kept across reloads needs: `process_slots`.
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
    /// The process that took the slot (`claim`), 0 when free.
    owner: std::sync::atomic::AtomicU64,
}

const HEAD: usize = std::mem::size_of::<SlotHead>();

impl SlotZone {
    /// Declares the zone `name` for `slots` workers of `slot_size` bytes each, owned by `tag`.
    /// Every cycle gets a fresh zone (`noreuse`): workers of an old cycle still shutting down
    /// never write into the new workers' slots.
    pub fn declare(cf: &Conf, name: &'static CStr, slots: usize, slot_size: usize, tag: &'static ngx_module_t) -> Result<Self, String> {
        let total = slots * (HEAD + slot_size);
        // The slab pool's own header and page table take about 1/170 of the zone.
        let zone = declare_block(cf, name, total, total / 64, tag)?;
        Ok(SlotZone { zone, slots, slot_size })
    }

    /// Like `declare`, but the zone outlives reloads (same name and size: nginx maps the old
    /// one again), so the workers of the old and the new configuration see each other's slots.
    /// Slots are then taken with `claim` by pid, not by worker number.
    pub fn declare_shared(cf: &Conf, name: &'static CStr, slots: usize, slot_size: usize, tag: &'static ngx_module_t) -> Result<Self, String> {
        let total = slots * (HEAD + slot_size);
        let zone = declare_block(cf, name, total, total / 64, tag)?;
        keep_across_reloads(zone);
        Ok(SlotZone { zone, slots, slot_size })
    }

    /// The slot of process `pid`: the one it has, else one that is empty or whose process is
    /// gone (`alive` tells), taken atomically. None when every slot is in use.
    pub fn claim(&self, pid: u64, alive: impl Fn(u64) -> bool) -> Option<usize> {
        let owners: Vec<&std::sync::atomic::AtomicU64> = (0..self.slots)
            .filter_map(|i| self.slot(i))
            // SAFETY: slot heads live in the mapped zone for the whole cycle.
            .map(|(h, _)| unsafe { &(*h).owner })
            .collect();
        claim_owner(&owners, pid, alive).map(|(i, _)| i)
    }

    /// Gives slot `i` back (its process exits).
    pub fn release(&self, i: usize) {
        self.clear(i);
        if let Some((h, _)) = self.slot(i) {
            // SAFETY: as in claim().
            unsafe { (*h).owner.store(0, std::sync::atomic::Ordering::Release) };
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

    /// Publishes `data` in slot `i` (its owner's only); false if it does not fit (the slot keeps
    /// its old blob).
    pub fn write(&self, i: usize, pid: u64, data: &[u8]) -> bool {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let Some((head, body)) = self.slot(i) else { return false };
        if data.len() > self.slot_size {
            return false;
        }
        // SAFETY: only the process that has slot `i` (its worker number, or `claim`) writes it;
        // readers detect a concurrent write by seq.
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
        (0..self.slots)
            .filter(|i| *i != except)
            .filter_map(|i| self.read(i).map(|(pid, v)| (i, pid, v)))
            .collect()
    }

    /// Every slot claimed (`claim`) by a live process other than `me` (`alive` tells), with the
    /// blob that process wrote: a slot just taken over from a dead process, still holding the
    /// dead one's blob, and a slot given back while it was read, are left out. So no process
    /// is read twice, nor one that is gone.
    pub fn read_claimed(&self, me: u64, alive: impl Fn(u64) -> bool) -> Vec<(usize, u64, Vec<u8>)> {
        (0..self.slots)
            .filter_map(|i| {
                let owner = self.owner(i);
                if owner == 0 || owner == me || !alive(owner) {
                    return None;
                }
                let (pid, blob) = self.read(i)?;
                (pid == owner && self.owner(i) == owner).then_some((i, pid, blob))
            })
            .collect()
    }

    /// The blob in slot `i` and the pid that wrote it; None when empty (or when every try raced
    /// with a write).
    pub fn read(&self, i: usize) -> Option<(u64, Vec<u8>)> {
        self.read_versioned(i).map(|(_, pid, v)| (pid, v))
    }

    /// The version of slot `i`'s blob: it changes with every write (and is odd during one).
    pub fn version(&self, i: usize) -> u64 {
        // SAFETY: as in claim().
        self.slot(i).map_or(0, |(h, _)| unsafe { (*h).seq.load(std::sync::atomic::Ordering::Acquire) })
    }

    /// `read`, with the version the copy is of.
    pub fn read_versioned(&self, i: usize) -> Option<(u64, u64, Vec<u8>)> {
        use std::sync::atomic::Ordering::Acquire;
        let (head, body) = self.slot(i)?;
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
                    return (len > 0).then_some((s1, pid, v));
                }
            }
        }
        None
    }

    /// The process (or token) that claimed slot `i`, 0 when free.
    pub fn owner(&self, i: usize) -> u64 {
        // SAFETY: as in claim().
        self.slot(i).map_or(0, |(h, _)| unsafe { (*h).owner.load(std::sync::atomic::Ordering::Acquire) })
    }
}

/// Which of `owners` (pid cells, 0 when free) process `pid` has: the one it already holds, else
/// one that is free or whose process is gone (`alive` tells), taken atomically; with whether it
/// was just taken. None when every cell is another live process's.
fn claim_owner(owners: &[&std::sync::atomic::AtomicU64], pid: u64, alive: impl Fn(u64) -> bool) -> Option<(usize, bool)> {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    if let Some(i) = owners.iter().position(|o| o.load(Acquire) == pid) {
        return Some((i, false));
    }
    owners.iter().enumerate().find_map(|(i, o)| {
        let cur = o.load(Acquire);
        ((cur == 0 || !alive(cur)) && o.compare_exchange(cur, pid, AcqRel, Acquire).is_ok()).then_some((i, true))
    })
}

/// Slots for the worker processes of two configurations at once (during a reload the old workers
/// serve their sessions until they leave), for a zone kept across reloads: 64 up to 32 workers,
/// whatever `worker_processes` says, so that a reload that changes it still maps the same zone
/// again (nginx reuses a zone only at the same size).
pub fn process_slots(cf: &Conf) -> usize {
    // `worker_processes` may come after rtmp{}: then this machine's CPUs (as `auto`).
    let workers = cf.worker_processes().unwrap_or(0).max(super::ncpu()).clamp(1, 256);
    (2 * workers).max(64)
}

/// Makes a zone from `declare_block` outlive reloads: a new cycle's zone of the same name, size
/// and tag is the old one, with its contents (the processes of both cycles see each other).
fn keep_across_reloads(zone: NonNull<ngx_shm_zone_t>) {
    // SAFETY: the zone was just declared; nginx reads these fields once the configuration is read.
    unsafe {
        (*zone.as_ptr()).noreuse = 0;
        (*zone.as_ptr()).init = Some(init_shared_slots);
    }
}

/// Declares a fresh (never reused across cycles) zone of at least `total` bytes plus `extra` for
/// the slab pool's own bookkeeping, whose `init_slots` allocates those `total` bytes zeroed.
fn declare_block(
    cf: &Conf,
    name: &'static CStr,
    total: usize,
    extra: usize,
    tag: &'static ngx_module_t,
) -> Result<NonNull<ngx_shm_zone_t>, String> {
    let mut s = ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 };
    // SAFETY: as in SharedCounter::declare; until init runs, data carries the byte count
    // init_slots allocates.
    unsafe {
        let page = nginx_sys::ngx_pagesize;
        let size = (total + extra + 16 * page).div_ceil(page) * page;
        let tag = tag as *const ngx_module_t as *mut c_void;
        let zone = NonNull::new(nginx_sys::ngx_shared_memory_add(cf.raw(), &mut s, size, tag))
            .ok_or_else(|| format!("cannot declare the shared memory zone \"{}\"", name.to_string_lossy()))?;
        (*zone.as_ptr()).init = Some(init_slots);
        (*zone.as_ptr()).noreuse = 1;
        (*zone.as_ptr()).data = total as *mut c_void;
        Ok(zone)
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

/// `init_slots` for a zone kept across reloads: the old cycle's block as it is.
unsafe extern "C" fn init_shared_slots(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: on reuse `data` is the old zone's block in the same mapping (same size).
    unsafe {
        if !data.is_null() {
            (*zone).data = data;
            return nginx_sys::NGX_OK as ngx_int_t;
        }
        init_slots(zone, data)
    }
}

/// A command board in shared memory: one worker posts a command, every worker runs it and
/// acknowledges with a number (the C module's control API acting on all workers). Workers show
/// they are alive with a heartbeat, so the poster knows whose answers to wait for. The board
/// outlives reloads: the workers of the old configuration, which keep their sessions until
/// they leave, run the commands the new ones post. Each process takes an entry by pid (`join`).
pub struct Board {
    zone: NonNull<ngx_shm_zone_t>,
    workers: usize,
}

const BOARD_CMD: usize = 8192;

#[repr(C)]
struct BoardHead {
    /// The pid of the worker whose command is on the board, 0 when free.
    owner: std::sync::atomic::AtomicU64,
    /// When the owner took it (ms since the epoch), so a crashed owner's lock expires.
    taken_ms: std::sync::atomic::AtomicU64,
    seq: std::sync::atomic::AtomicU64,
    len: std::sync::atomic::AtomicU64,
    cmd: [u8; BOARD_CMD],
}

#[repr(C)]
struct BoardWorker {
    /// The process that has this entry (`join`), 0 when free.
    pid: std::sync::atomic::AtomicU64,
    beat_ms: std::sync::atomic::AtomicU64,
    done_seq: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

/// Wall-clock milliseconds (comparable between processes, unlike nginx's msec counter).
pub fn wall_ms() -> u64 {
    // SAFETY: nginx's cached time, updated by each process's event loop.
    unsafe {
        let t = &*nginx_sys::ngx_cached_time;
        t.sec as u64 * 1000 + t.msec as u64
    }
}

impl Board {
    /// Declares the board for `workers` processes at once (`process_slots`: the same count at
    /// every reload, so the old board is kept).
    pub fn declare(cf: &Conf, name: &'static CStr, workers: usize, tag: &'static ngx_module_t) -> Result<Self, String> {
        let total = std::mem::size_of::<BoardHead>() + workers * std::mem::size_of::<BoardWorker>();
        let zone = declare_block(cf, name, total, 0, tag)?;
        keep_across_reloads(zone);
        Ok(Board { zone, workers })
    }

    fn head(&self) -> Option<&BoardHead> {
        // SAFETY: data is the zeroed block init_slots allocated (null before).
        let p = unsafe { (*self.zone.as_ptr()).data } as *const BoardHead;
        // SAFETY: a mapped, aligned BoardHead followed by the worker array.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    fn worker(&self, i: usize) -> Option<&BoardWorker> {
        if i >= self.workers {
            return None;
        }
        let h = self.head()? as *const BoardHead;
        // SAFETY: the worker array follows the head in the same block.
        unsafe { Some(&*((h.add(1) as *const BoardWorker).add(i))) }
    }

    /// The entry of process `pid`: the one it has, else a free one or one whose process is gone
    /// (`alive` tells), taken atomically; answers of its former owner no longer count. None
    /// when every entry is in use.
    pub fn join(&self, pid: u64, alive: impl Fn(u64) -> bool) -> Option<usize> {
        use std::sync::atomic::Ordering::Release;
        let seq = self.seq();
        let owners: Vec<&std::sync::atomic::AtomicU64> =
            (0..self.workers).filter_map(|i| self.worker(i)).map(|w| &w.pid).collect();
        let (i, fresh) = claim_owner(&owners, pid, alive)?;
        if fresh {
            if let Some(w) = self.worker(i) {
                w.count.store(0, Release);
                w.done_seq.store(seq, Release);
            }
        }
        Some(i)
    }

    /// The number of the latest command posted (commands before a process joins are not its).
    pub fn seq(&self) -> u64 {
        self.head().map_or(0, |h| h.seq.load(std::sync::atomic::Ordering::Acquire))
    }

    /// The process of entry `i` is alive (called on each poll).
    pub fn beat(&self, i: usize) {
        if let Some(w) = self.worker(i) {
            w.beat_ms.store(wall_ms(), std::sync::atomic::Ordering::Release);
        }
    }

    /// The process of entry `i` exits: the entry is free.
    pub fn leave(&self, i: usize) {
        if let Some(w) = self.worker(i) {
            w.pid.store(0, std::sync::atomic::Ordering::Release);
        }
    }

    /// Takes the board for a command; `None` while another worker's command is on it.
    pub fn post(&self, pid: u64, cmd: &[u8]) -> Option<u64> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
        let h = self.head()?;
        if cmd.len() > BOARD_CMD {
            return None;
        }
        let owner = h.owner.load(Acquire);
        // A lock older than 5 s belongs to a worker that died holding it.
        let stale = owner != 0 && wall_ms().saturating_sub(h.taken_ms.load(Acquire)) > 5000;
        if h.owner.compare_exchange(if stale { owner } else { 0 }, pid, AcqRel, Acquire).is_err() {
            return None;
        }
        h.taken_ms.store(wall_ms(), Release);
        // SAFETY: the board is ours until release; readers look at cmd only after seq changes.
        unsafe {
            std::ptr::copy_nonoverlapping(cmd.as_ptr(), h.cmd.as_ptr() as *mut u8, cmd.len());
        }
        h.len.store(cmd.len() as u64, Release);
        Some(h.seq.fetch_add(1, AcqRel) + 1)
    }

    /// A command newer than `done`, to run: (seq, command).
    pub fn pending(&self, done: u64) -> Option<(u64, Vec<u8>)> {
        use std::sync::atomic::Ordering::Acquire;
        let h = self.head()?;
        let seq = h.seq.load(Acquire);
        if seq <= done || h.owner.load(Acquire) == 0 {
            return None;
        }
        let len = (h.len.load(Acquire) as usize).min(BOARD_CMD);
        let cmd = h.cmd[..len].to_vec();
        std::sync::atomic::fence(Acquire);
        // A new command was being written meanwhile: take it at the next poll.
        (h.seq.load(Acquire) == seq).then_some((seq, cmd))
    }

    pub fn ack(&self, i: usize, seq: u64, count: u64) {
        use std::sync::atomic::Ordering::Release;
        if let Some(w) = self.worker(i) {
            w.count.store(count, Release);
            w.done_seq.store(seq, Release);
        }
    }

    /// The answers to `seq` so far: (sum of counts, live workers that have not answered yet),
    /// not counting entry `me`. An answer counts even if its worker left since: an old worker
    /// whose last session a command closed exits at once.
    pub fn answers(&self, seq: u64, me: usize) -> (u64, usize) {
        use std::sync::atomic::Ordering::Acquire;
        let now = wall_ms();
        let (mut sum, mut waiting) = (0, 0);
        for i in (0..self.workers).filter(|i| *i != me) {
            let Some(w) = self.worker(i) else { continue };
            if w.done_seq.load(Acquire) >= seq {
                sum += w.count.load(Acquire);
            } else if w.pid.load(Acquire) != 0 && now.saturating_sub(w.beat_ms.load(Acquire)) <= 2000 {
                waiting += 1;
            }
        }
        (sum, waiting)
    }

    pub fn release(&self, pid: u64) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if let Some(h) = self.head() {
            let _ = h.owner.compare_exchange(pid, 0, AcqRel, Acquire);
        }
    }
}
