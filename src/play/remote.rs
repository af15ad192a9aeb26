//! Remote play entries (`play http://host/prefix`): the file is fetched with a non-blocking GET on
//! nginx's connections and timers, its body written to a temporary file under `play_temp_path`
//! as it arrives, and played from there while it downloads (`RemoteSource` answers `Pending` for
//! bytes not there yet).
//!
//! - Entries are tried in order: a connection error, a bad answer or any status but 200 moves on
//!   to the next one. Once an entry answered 200 it is the one: a failure later (the connection
//!   closed or timed out before `Content-Length` bytes came) ends the play with an error.
//! - The request is HTTP/1.0 (as nginx-rtmp-module), so the body is `Content-Length` bytes or
//!   runs to the close; an answer in any transfer coding is refused.
//! - Without `Content-Length` nothing is played before the whole body is there (the readers need
//!   the file's length), and such a file is never kept: its completeness cannot be checked.
//! - `netcall_timeout` limits each step (connect, send, every read), as the C module.
//! - With `play_local_path`, a complete download (200, exactly `Content-Length` bytes) is renamed
//!   to `play_local_path/<file>`, where later plays find it first. Nothing else is kept: the
//!   temporary file is unlinked at once when there is no `play_local_path`, and otherwise when
//!   the download fails or its play ends first.
//! - Players of one file in one worker share its download: a play that asks for a file this
//!   worker is downloading (or has downloaded and still holds) reads the same temporary file,
//!   from its own position. The download goes on as long as any of its players holds it (one
//!   leaving cancels nothing); a download that failed fails all of them and is never joined
//!   again (the next play fetches anew). Shared only between plays of the same name from the
//!   same entries, kept the same way, with the same play arguments: the origin may answer per
//!   argument (a token), so a player never gets what was fetched with another one's arguments.
//!   The request carries the first player's `addr=`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::rc::{Rc, Weak};

use bytes::Bytes;
use rtmp_proto::http::{form_encode, percent_encode};
use rtmp_proto::vod::{Source, SourceError};

use crate::ngx::http_head::{parse_response_head, Head};
use crate::ngx::log::Log;
use crate::ngx::timer::{Again, Timer};
use crate::ngx::upstream::{strerror, ConnectError, Io, UpConn, UpEvent};
use crate::{log_debug, log_info};

use super::conf::Remote;

/// The most bytes of a response head.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read per event at most, so one fast download never holds the worker for long.
const READ_BURST: usize = 1024 * 1024;

/// How a fetch failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Every entry answered 404 or 410.
    NotFound,
    Error(String),
}

/// Where the file is fetched from, and what is done with it.
pub struct FetchSpec {
    pub entries: Vec<Remote>,
    /// The file name under each entry (`a.flv`, `dir/b.mp4`).
    pub rel: String,
    /// The player's address (`addr=` of the query).
    pub addr: String,
    /// The play's arguments (after `addr=` in the query).
    pub args: String,
    pub temp_dir: String,
    pub local_dir: Option<String>,
    pub timeout_ms: u64,
}

impl FetchSpec {
    fn key(&self) -> Key {
        Key {
            urls: self.entries.iter().map(|e| e.text.clone()).collect(),
            rel: self.rel.clone(),
            args: self.args.clone(),
            temp_dir: self.temp_dir.clone(),
            local_dir: self.local_dir.clone(),
        }
    }

    /// `addr=<client>` and the play's arguments.
    fn query(&self) -> String {
        let mut q = form_encode(&[("addr", &self.addr)]);
        if !self.args.is_empty() {
            q.push('&');
            q.push_str(&percent_encode(&self.args, b"=&%+"));
        }
        q
    }
}

/// What makes two plays share a download.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    urls: Vec<String>,
    rel: String,
    args: String,
    temp_dir: String,
    local_dir: Option<String>,
}

thread_local! {
    /// This worker's downloads by what they fetch, while any player holds them.
    static DOWNLOADS: RefCell<HashMap<Key, Weak<RefCell<Download>>>> = RefCell::new(HashMap::new());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Head,
    Body,
    Done,
    Failed,
}

struct Download {
    spec: FetchSpec,
    key: Key,
    /// The cycle's log: a download outlives the player that started it.
    log: Log,
    /// Index of the entry being tried, and of its next address.
    entry: usize,
    next_addr: usize,
    addr: Option<SocketAddr>,
    conn: Option<UpConn>,
    phase: Phase,
    request: Vec<u8>,
    sent: usize,
    head: Vec<u8>,
    /// Content-Length of the accepted answer.
    total: Option<u64>,
    /// The temporary file (once an entry answered 200), and its name while it has one.
    file: Option<File>,
    temp_name: Option<String>,
    written: u64,
    /// Only 404s so far (for StreamNotFound rather than Play.Failed).
    all_not_found: bool,
    /// What went wrong with each entry, for the log and the player's status.
    errors: Vec<String>,
    failure: Option<Failure>,
    /// Continues reading after a burst.
    resume: Option<Timer>,
    me: Weak<RefCell<Download>>,
}

/// The file of a remote entry as the VOD reader's source, downloading while it is read.
/// Dropping the last one of a download ends it (the connection closes, the temporary file goes).
pub struct RemoteSource {
    dl: Rc<RefCell<Download>>,
}

/// How a play got its `RemoteSource`.
pub enum Opened {
    /// This play started the download.
    Started,
    /// It joined this worker's download of the file, which had `written` bytes of `total`.
    Joined { written: u64, total: Option<u64> },
}

impl RemoteSource {
    /// The file of `spec`: this worker's download of it if one is running or done (not failed),
    /// or a new one from the first entry.
    pub fn open(spec: FetchSpec) -> (RemoteSource, Opened) {
        let key = spec.key();
        let running = DOWNLOADS
            .try_with(|d| {
                let mut d = d.try_borrow_mut().ok()?;
                d.retain(|_, w| w.strong_count() > 0);
                d.get(&key)?.upgrade()
            })
            .ok()
            .flatten();
        if let Some(dl) = running {
            let joined = dl.try_borrow().ok().and_then(|d| {
                (d.phase != Phase::Failed).then_some(Opened::Joined {
                    written: d.written,
                    total: d.total,
                })
            });
            if let Some(how) = joined {
                return (RemoteSource { dl }, how);
            }
        }
        let dl = Self::start(spec, key.clone());
        let _ = DOWNLOADS.try_with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                d.insert(key, Rc::downgrade(&dl.dl));
            }
        });
        (dl, Opened::Started)
    }

    /// Starts fetching `spec.rel` from the first entry.
    fn start(spec: FetchSpec, key: Key) -> RemoteSource {
        let dl = Rc::new(RefCell::new(Download {
            spec,
            key,
            log: Log::cycle(),
            entry: 0,
            next_addr: 0,
            addr: None,
            conn: None,
            phase: Phase::Connecting,
            request: Vec::new(),
            sent: 0,
            head: Vec::new(),
            total: None,
            file: None,
            temp_name: None,
            written: 0,
            all_not_found: true,
            errors: Vec::new(),
            failure: None,
            resume: None,
            me: Weak::new(),
        }));
        if let Ok(mut d) = dl.try_borrow_mut() {
            d.me = Rc::downgrade(&dl);
            d.start_entry();
        }
        RemoteSource { dl }
    }

    /// Why the download failed, once it has.
    pub fn failure(&self) -> Option<Failure> {
        self.dl.try_borrow().ok().and_then(|d| d.failure.clone())
    }

    /// The URL the file comes from (the entry being tried).
    pub fn url(&self) -> String {
        self.dl
            .try_borrow()
            .map_or_else(|_| String::new(), |d| d.url())
    }
}

impl Source for RemoteSource {
    fn len(&self) -> u64 {
        let Ok(d) = self.dl.try_borrow() else {
            return 0;
        };
        match d.total {
            Some(t) => t,
            None => d.written,
        }
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let Ok(d) = self.dl.try_borrow() else {
            return Err(SourceError::Pending);
        };
        let done = d.phase == Phase::Done;
        let end = match d.total {
            Some(t) => t,
            // Without a length nothing is read before the end: the readers need the length.
            None if done => d.written,
            None if d.phase == Phase::Failed => return Err(d.read_error()),
            None => return Err(SourceError::Pending),
        };
        let want_end = offset.saturating_add(len as u64).min(end);
        if want_end > d.written {
            return Err(match d.phase {
                Phase::Failed => d.read_error(),
                _ => SourceError::Pending,
            });
        }
        let Some(file) = d.file.as_ref() else {
            return Err(d.read_error());
        };
        let n = usize::try_from(want_end.saturating_sub(offset)).unwrap_or(0);
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Io(e.to_string())),
            }
        }
        buf.truncate(got);
        Ok(Bytes::from(buf))
    }
}

fn on_event(me: &Weak<RefCell<Download>>, ev: UpEvent) {
    let Some(rc) = me.upgrade() else {
        return;
    };
    // The connection is dropped after the borrow ends: closing may run arbitrary drops.
    let closed = match rc.try_borrow_mut() {
        Ok(mut d) => {
            d.on_event(ev);
            if matches!(d.phase, Phase::Done | Phase::Failed) {
                d.conn.take()
            } else {
                None
            }
        }
        Err(_) => None,
    };
    drop(closed);
}

impl Download {
    fn url(&self) -> String {
        match self.spec.entries.get(self.entry) {
            Some(e) => format!("{}/{}", e.text.trim_end_matches('/'), self.spec.rel),
            None => self.spec.rel.clone(),
        }
    }

    fn read_error(&self) -> SourceError {
        SourceError::Io(match &self.failure {
            Some(Failure::Error(e)) => format!("download failed: {e}"),
            Some(Failure::NotFound) => "not found".into(),
            None => "download failed".into(),
        })
    }

    /// Starts on the current entry (or fails when there is none left).
    fn start_entry(&mut self) {
        let Some(e) = self.spec.entries.get(self.entry) else {
            let why = self.errors.join("; ");
            self.failure = Some(if self.all_not_found {
                Failure::NotFound
            } else {
                Failure::Error(why)
            });
            self.phase = Phase::Failed;
            return;
        };
        let mut target = e.prefix.clone();
        target.push('/');
        target.push_str(&percent_encode(&self.spec.rel, b"/"));
        let query = self.spec.query();
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query);
        }
        self.request = format!(
            "GET {target} HTTP/1.0\r\nHost: {}\r\nUser-Agent: nginx-rtmp-rs\r\nConnection: close\r\n\r\n",
            e.host_header.chars().filter(|c| !c.is_control()).collect::<String>()
        )
        .into_bytes();
        self.next_addr = 0;
        if e.addrs.is_empty() {
            self.entry_failed(format!("host of {} not resolved", e.text), false);
            return;
        }
        log_info!(self.log, "rtmp: play: fetching {}", self.url());
        self.connect_next();
    }

    /// The current entry did not give the file: the next one is tried.
    fn entry_failed(&mut self, why: String, not_found: bool) {
        log_info!(self.log, "rtmp: play: {}: {}", self.url(), why);
        self.errors.push(format!("{}: {why}", self.url()));
        self.all_not_found &= not_found;
        let old = self.conn.take();
        drop(old);
        self.head.clear();
        self.sent = 0;
        self.entry += 1;
        self.start_entry();
    }

    /// The accepted answer's download failed: final.
    fn fail(&mut self, why: String) {
        log_info!(
            self.log,
            "rtmp: play: {}: download failed after {} bytes: {}",
            self.url(),
            self.written,
            why
        );
        self.failure = Some(Failure::Error(why));
        self.phase = Phase::Failed;
        self.remove_temp();
    }

    fn remove_temp(&mut self) {
        if let Some(name) = self.temp_name.take() {
            if let Err(e) = fs::remove_file(&name) {
                log_info!(self.log, "rtmp: play: cannot remove \"{}\": {}", name, e);
            }
        }
    }

    fn connect_next(&mut self) {
        loop {
            let Some(&addr) = self
                .spec
                .entries
                .get(self.entry)
                .and_then(|e| e.addrs.get(self.next_addr))
            else {
                let why = match self.addr {
                    Some(a) => format!("cannot connect (last tried {a})"),
                    None => "cannot connect".into(),
                };
                self.entry_failed(why, false);
                return;
            };
            self.next_addr += 1;
            match UpConn::connect(&addr, self.log) {
                Err(ConnectError::Refused(e)) => {
                    log_debug!(
                        self.log,
                        "rtmp: play: connect to {} failed: {}",
                        addr,
                        strerror(e)
                    );
                    self.addr = Some(addr);
                }
                Err(ConnectError::NoConnection) => {
                    self.entry_failed("no connection available".into(), false);
                    return;
                }
                Ok((conn, connected)) => {
                    let me = self.me.clone();
                    conn.set_handler(move |ev| on_event(&me, ev));
                    self.addr = Some(addr);
                    let old = self.conn.replace(conn);
                    drop(old);
                    if connected {
                        self.start_sending();
                    } else {
                        self.phase = Phase::Connecting;
                        self.wait_write();
                    }
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, ev: UpEvent) {
        match (self.phase, ev) {
            (Phase::Done | Phase::Failed, _) => {}
            (Phase::Body, UpEvent::Shutdown) => self.fail("worker is shutting down".into()),
            (_, UpEvent::Shutdown) => {
                self.failure = Some(Failure::Error("worker is shutting down".into()));
                self.phase = Phase::Failed;
            }
            (Phase::Connecting, UpEvent::WriteTimeout | UpEvent::ReadTimeout) => {
                log_debug!(self.log, "rtmp: play: connect to {:?} timed out", self.addr);
                self.connect_next();
            }
            (Phase::Connecting, UpEvent::Write | UpEvent::Read) => {
                match self
                    .conn
                    .as_ref()
                    .map_or(nginx_sys::EBADF as i32, |c| c.socket_error())
                {
                    0 => self.start_sending(),
                    err => {
                        log_debug!(
                            self.log,
                            "rtmp: play: connect to {:?} failed: {}",
                            self.addr,
                            strerror(err)
                        );
                        self.connect_next();
                    }
                }
            }
            (Phase::Sending, UpEvent::Write) => self.send(),
            (Phase::Sending, UpEvent::WriteTimeout) => {
                self.entry_failed("timed out sending the request".into(), false)
            }
            (Phase::Head | Phase::Body, UpEvent::Read) => self.receive(),
            (Phase::Head, UpEvent::ReadTimeout) => {
                self.entry_failed("timed out waiting for the answer".into(), false)
            }
            (Phase::Body, UpEvent::ReadTimeout) => self.fail(format!(
                "no data for {} ms (netcall_timeout)",
                self.spec.timeout_ms
            )),
            _ => {}
        }
    }

    fn wait_write(&mut self) {
        let ok = match self.conn.as_ref() {
            Some(c) => {
                c.timer(true, self.spec.timeout_ms, true);
                c.want_write()
            }
            None => false,
        };
        if !ok {
            self.entry_failed("cannot wait for the connection".into(), false);
        }
    }

    fn start_sending(&mut self) {
        self.phase = Phase::Sending;
        if let Some(c) = self.conn.as_ref() {
            c.clear_timer(true);
        }
        self.send();
    }

    fn send(&mut self) {
        loop {
            let Some(c) = self.conn.as_ref() else {
                return;
            };
            if self.sent >= self.request.len() {
                self.phase = Phase::Head;
                c.clear_timer(true);
                let _ = c.want_write();
                self.receive();
                return;
            }
            match c.send(&self.request[self.sent..]) {
                Io::Done(n) => self.sent += n,
                Io::Again => return self.wait_write(),
                Io::Error(e) => {
                    return self.entry_failed(format!("send(): {}", strerror(e)), false)
                }
                Io::Eof => return self.entry_failed("connection closed".into(), false),
            }
        }
    }

    fn receive(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut burst = 0;
        loop {
            if !matches!(self.phase, Phase::Head | Phase::Body) {
                return;
            }
            if burst >= READ_BURST {
                self.resume_later();
                return;
            }
            let Some(c) = self.conn.as_ref() else {
                return;
            };
            match c.recv(&mut buf) {
                Io::Done(n) => {
                    burst += n;
                    if let Some(data) = buf.get(..n) {
                        self.take(data);
                    }
                }
                Io::Eof => return self.eof(),
                Io::Again => {
                    c.timer(false, self.spec.timeout_ms, true);
                    if !c.want_read() {
                        match self.phase {
                            Phase::Head => {
                                self.entry_failed("cannot wait for the answer".into(), false)
                            }
                            _ => self.fail("cannot wait for data".into()),
                        }
                    }
                    return;
                }
                Io::Error(e) => {
                    let why = format!("recv(): {}", strerror(e));
                    match self.phase {
                        Phase::Head => self.entry_failed(why, false),
                        _ => self.fail(why),
                    }
                    return;
                }
            }
        }
    }

    /// Reading goes on from a timer: an edge-triggered socket reports nothing new until it has
    /// been read to the end.
    fn resume_later(&mut self) {
        if self.resume.is_none() {
            let me = self.me.clone();
            self.resume = Some(Timer::new(move || {
                on_event(&me, UpEvent::Read);
                Again::Stop
            }));
        }
        if let Some(t) = &self.resume {
            t.arm(0);
        }
    }

    /// Bytes from the socket: the head, then the body.
    fn take(&mut self, data: &[u8]) {
        if self.phase == Phase::Body {
            return self.write_body(data);
        }
        self.head.extend_from_slice(data);
        let head = match parse_response_head(&self.head) {
            Ok(Some(h)) => h,
            Ok(None) if self.head.len() > MAX_HEAD => {
                return self
                    .entry_failed(format!("answer head longer than {MAX_HEAD} bytes"), false)
            }
            Ok(None) => return,
            Err(e) => return self.entry_failed(e, false),
        };
        if let Err((why, not_found)) = self.accept(&head) {
            return self.entry_failed(why, not_found);
        }
        let rest = self.head.split_off(head.len.min(self.head.len()));
        self.head = Vec::new();
        self.phase = Phase::Body;
        if !rest.is_empty() {
            self.write_body(&rest);
        }
        self.check_end();
    }

    /// Checks the answer's head and opens the temporary file.
    fn accept(&mut self, head: &Head) -> Result<(), (String, bool)> {
        if (100..200).contains(&head.status) {
            return Err((format!("unexpected interim answer {}", head.status), false));
        }
        if head.status != 200 {
            let not_found = matches!(head.status, 404 | 410);
            return Err((format!("answered {}", head.status), not_found));
        }
        if head
            .values("transfer-encoding")
            .any(|v| !v.eq_ignore_ascii_case("identity"))
        {
            return Err((
                "answered with a transfer coding to an HTTP/1.0 request".into(),
                false,
            ));
        }
        let mut total = None;
        for v in head.values("content-length") {
            let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| (format!("invalid Content-Length \"{v}\""), false))?;
            if total.is_some_and(|t| t != n) {
                return Err(("conflicting Content-Length headers".into(), false));
            }
            total = Some(n);
        }
        let (file, name) = create_temp(&self.spec.temp_dir).map_err(|e| {
            (
                format!("cannot create a file in \"{}\": {e}", self.spec.temp_dir),
                false,
            )
        })?;
        let name = if self.spec.local_dir.is_some() {
            Some(name)
        } else {
            // Nothing to keep: the file lives only as long as its descriptor.
            if let Err(e) = fs::remove_file(&name) {
                log_info!(self.log, "rtmp: play: cannot remove \"{}\": {}", name, e);
            }
            None
        };
        log_info!(
            self.log,
            "rtmp: play: {} answered 200, {} bytes",
            self.url(),
            total.map_or_else(|| "length unknown".to_string(), |t| t.to_string())
        );
        self.total = total;
        self.file = Some(file);
        self.temp_name = name;
        Ok(())
    }

    fn write_body(&mut self, data: &[u8]) {
        let room = match self.total {
            Some(t) => usize::try_from(t.saturating_sub(self.written)).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let data = data.get(..data.len().min(room)).unwrap_or_default();
        let Some(file) = self.file.as_ref() else {
            return self.fail("no file".into());
        };
        if let Err(e) = file.write_all_at(data, self.written) {
            return self.fail(format!("cannot write the temporary file: {e}"));
        }
        self.written += data.len() as u64;
        self.check_end();
    }

    /// All `Content-Length` bytes are there: done.
    fn check_end(&mut self) {
        if self.phase == Phase::Body && self.total.is_some_and(|t| self.written >= t) {
            self.complete(true);
        }
    }

    fn eof(&mut self) {
        match self.phase {
            Phase::Head => self.entry_failed("connection closed before the answer".into(), false),
            Phase::Body => match self.total {
                Some(t) if self.written < t => self.fail(format!(
                    "connection closed after {} of {} bytes",
                    self.written, t
                )),
                Some(_) => self.complete(true),
                // Delimited by the close: complete as far as anyone can tell, never kept.
                None => self.complete(false),
            },
            _ => {}
        }
    }

    fn complete(&mut self, checked: bool) {
        self.phase = Phase::Done;
        if let Some(c) = self.conn.as_ref() {
            c.clear_timer(false);
        }
        log_info!(
            self.log,
            "rtmp: play: {}: downloaded {} bytes",
            self.url(),
            self.written
        );
        let Some(temp) = self.temp_name.clone() else {
            return;
        };
        let Some(local) = self.spec.local_dir.as_deref().filter(|_| checked) else {
            self.remove_temp();
            return;
        };
        let target = format!("{local}/{}", self.spec.rel);
        let kept = std::path::Path::new(&target)
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::rename(&temp, &target));
        match kept {
            Ok(()) => {
                self.temp_name = None;
                log_info!(
                    self.log,
                    "rtmp: play: {} kept as \"{}\"",
                    self.url(),
                    target
                );
            }
            Err(e) => {
                log_info!(
                    self.log,
                    "rtmp: play: cannot keep \"{}\" as \"{}\": {}",
                    temp,
                    target,
                    e
                );
                self.remove_temp();
            }
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.remove_temp();
        // Its entry goes with it (unless a new download of the file took the place).
        let _ = DOWNLOADS.try_with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                if d.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
                    d.remove(&self.key);
                }
            }
        });
    }
}

/// A new file `nginx-rtmp-vod.<pid>.<n>` in `dir`, never one that exists (O_EXCL).
fn create_temp(dir: &str) -> io::Result<(File, String)> {
    thread_local! {
        static COUNTER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let pid = std::process::id();
    for _ in 0..1000 {
        let n = COUNTER.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        let name = format!("{dir}/nginx-rtmp-vod.{pid}.{n}");
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&name)
        {
            Ok(f) => return Ok((f, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}
