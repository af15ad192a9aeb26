//! The sending side of a connection, shared (`Rc<Peer>`) with the streams it plays: a bounded
//! queue of reference-counted chunk bytes, flushed by the connection's own write handler with one
//! writev per wake-up, or, with a merge interval, one writev per interval for media.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use crate::ngx::conn::{Conn, Sent};
use crate::ngx::http::{HttpOut, Out};
use crate::ngx::log::Log;

/// What a peer's bytes are: RTMP chunks on its own socket, or FLV tags in an HTTP response
/// (plain, or in WebSocket binary frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Rtmp,
    /// FLV bytes as they are (nginx's filters frame them, or HTTP/1.0 needs no framing).
    Flv,
    /// FLV in HTTP/1.1 chunks made by us (written to a plain socket directly).
    FlvChunked,
    WsFlv,
}

/// Queue capacity (entries) kept after the queue drained.
const SHRINK_ABOVE: usize = 64;

pub enum Flush {
    /// Everything was written.
    Done,
    /// The socket is full; wait for the write event.
    Again,
    Error,
}

/// What a client told about itself in `connect`, for stat pages.
#[derive(Default, Clone, Debug)]
pub struct PeerInfo {
    pub flashver: String,
    pub page_url: String,
    pub swf_url: String,
    /// An outgoing relay connection of ours (pull or push), not a client.
    pub relay: bool,
    /// A link between two workers (either end): stat pages leave it out.
    pub internal: bool,
}

/// This worker's totals since it started: connections accepted, bytes read and sent.
#[derive(Default, Clone, Copy, Debug)]
pub struct Totals {
    pub accepted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

thread_local! {
    static TOTALS: Cell<Totals> = const { Cell::new(Totals { accepted: 0, bytes_in: 0, bytes_out: 0 }) };
}

pub fn worker_totals() -> Totals {
    TOTALS.with(|t| t.get())
}

fn count(f: impl FnOnce(&mut Totals)) {
    TOTALS.with(|t| {
        let mut v = t.get();
        f(&mut v);
        t.set(v);
    })
}

/// A connection was accepted.
pub fn count_accepted() {
    count(|t| t.accepted += 1);
}

pub struct Peer {
    conn: Conn,
    pub id: u64,
    /// Media messages queued at most; control messages are never dropped.
    max_media: usize,
    queue: RefCell<Queue>,
    /// Outgoing chunk size this client was told (Set Chunk Size after connect).
    pub chunk_size: Cell<u32>,
    closed: Cell<bool>,
    close_request: RefCell<Option<String>>,
    /// Media waits up to this long to be written together (0: written at the end of the wake-up).
    merge_ms: Cell<u64>,
    /// The write timer runs for a merge (not for a send timeout).
    merge_armed: Cell<bool>,
    wire: Wire,
    /// An HTTP player's response: the queue goes through nginx's output filters.
    http: Option<HttpOut>,
    /// Bytes handed to the socket or to nginx's output filters.
    sent: Cell<u64>,
    received: Cell<u64>,
    /// Media messages dropped for a full queue.
    dropped: Cell<u64>,
    started_ms: u64,
    info: RefCell<PeerInfo>,
    /// An FLV player got its file header (once per response, whatever it plays after).
    flv_header_sent: Cell<bool>,
    redirect: RefCell<Option<Redirect>>,
    /// Control API record requests: (recorder, start).
    record: RefCell<Vec<(String, bool)>>,
}

/// A control request to move a session's publishing or playing to another stream name.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub name: String,
    pub publishers: bool,
    pub players: bool,
}

/// Buffers to send, and in lockstep whether each counts against the media bound.
#[derive(Default)]
struct Queue {
    bufs: VecDeque<Bytes>,
    is_media: VecDeque<bool>,
    media: usize,
}

impl Queue {
    fn push(&mut self, b: Bytes, media: bool) {
        self.bufs.push_back(b);
        self.is_media.push_back(media);
        self.media += media as usize;
    }
    fn pop(&mut self) {
        self.bufs.pop_front();
        if self.is_media.pop_front() == Some(true) {
            self.media -= 1;
        }
    }
}

impl Peer {
    pub fn new(conn: Conn, max_media: usize) -> Self {
        Peer {
            conn,
            id: conn.number(),
            max_media,
            queue: RefCell::new(Queue::default()),
            chunk_size: Cell::new(128),
            closed: Cell::new(false),
            close_request: RefCell::new(None),
            merge_ms: Cell::new(0),
            merge_armed: Cell::new(false),
            wire: Wire::Rtmp,
            http: None,
            sent: Cell::new(0),
            received: Cell::new(0),
            dropped: Cell::new(0),
            started_ms: crate::ngx::now_ms(),
            info: RefCell::new(PeerInfo::default()),
            flv_header_sent: Cell::new(false),
            redirect: RefCell::new(None),
            record: RefCell::new(Vec::new()),
        }
    }

    /// Asks this connection's own handler to start or stop its recorder `rec` (control API).
    pub fn request_record(&self, rec: &str, start: bool) {
        if self.closed.get() {
            return;
        }
        self.record.borrow_mut().push((rec.to_string(), start));
        self.conn.post_write();
    }

    pub fn take_record_requests(&self) -> Vec<(String, bool)> {
        std::mem::take(&mut *self.record.borrow_mut())
    }

    /// True the first time only: an FLV response has one file header.
    pub fn first_flv_header(&self) -> bool {
        !self.flv_header_sent.replace(true)
    }

    /// Asks this connection's own handler to move its streams to another name (control API).
    pub fn request_redirect(&self, r: Redirect) {
        if self.closed.get() {
            return;
        }
        *self.redirect.borrow_mut() = Some(r);
        self.conn.post_write();
    }

    pub fn take_redirect(&self) -> Option<Redirect> {
        self.redirect.borrow_mut().take()
    }

    pub fn set_info(&self, info: PeerInfo) {
        *self.info.borrow_mut() = info;
    }

    pub fn info(&self) -> PeerInfo {
        self.info.borrow().clone()
    }

    /// The client's address as nginx prints it.
    pub fn address(&self) -> String {
        self.conn.addr_text()
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    pub fn add_received(&self, n: usize) {
        self.received.set(self.received.get() + n as u64);
        count(|t| t.bytes_in += n as u64);
    }

    pub fn received(&self) -> u64 {
        self.received.get()
    }

    /// One media message not queued (the queue was full).
    pub fn add_dropped(&self) {
        self.dropped.set(self.dropped.get() + 1);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    fn add_sent(&self, n: u64) {
        self.sent.set(self.sent.get() + n);
        count(|t| t.bytes_out += n);
    }

    /// The sending side of an HTTP player (`conn` is the request's connection).
    pub fn http(conn: Conn, out: HttpOut, wire: Wire, max_media: usize) -> Self {
        Peer { wire, http: Some(out), ..Peer::new(conn, max_media) }
    }

    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// Lets media wait up to `ms` so that many messages go out in one writev (fewer syscalls and
    /// TCP segments per delivered byte, at up to `ms` of added latency).
    pub fn set_merge_ms(&self, ms: u64) {
        self.merge_ms.set(ms);
    }

    /// Whether a write timeout was the merge timer (then: flush), rather than a send timeout.
    pub fn take_merge_timer(&self) -> bool {
        self.merge_armed.replace(false)
    }

    pub fn log(&self) -> Log {
        self.conn.log()
    }

    /// Queues protocol output (replies, statuses): never dropped.
    pub fn push(&self, b: Bytes) {
        if self.closed.get() || b.is_empty() {
            return;
        }
        self.queue.borrow_mut().push(b, false);
        self.conn.post_write();
    }

    /// Queues one media message; false when the player's queue is full (`out_queue`).
    pub fn push_media(&self, b: Bytes) -> bool {
        self.queue_media(b, false)
    }

    /// Queues one media message that may wait for the next write this connection makes anyway
    /// (`write_merge auto`: audio waits for the video frame that follows it); the caller makes
    /// sure one comes soon. False when the player's queue is full.
    pub fn push_media_held(&self, b: Bytes) -> bool {
        self.queue_media(b, true)
    }

    fn queue_media(&self, b: Bytes, held: bool) -> bool {
        if self.closed.get() {
            return true;
        }
        let mut q = self.queue.borrow_mut();
        if q.media >= self.max_media {
            self.add_dropped();
            return false;
        }
        q.push(b, true);
        let ms = self.merge_ms.get();
        if ms == 0 {
            if !held {
                self.conn.post_write();
            }
        } else if !self.merge_armed.get() && !self.conn.write_timer_set() {
            // A running write timer is a send timeout: the socket is full and its write event
            // will flush the queue anyway.
            self.merge_armed.set(true);
            self.conn.write_timer(ms);
        }
        true
    }

    /// An `onStatus` on `stream_id`, from anywhere (another connection's handler, a callback).
    pub fn send_status(&self, stream_id: u32, level: &str, code: &str, description: &str) {
        if self.wire != Wire::Rtmp {
            return;
        }
        let payload = rtmp_proto::command::on_status(level, code, description, None);
        let msg = rtmp_proto::RawMessage::new(rtmp_proto::message::msg_type::AMF0_COMMAND, stream_id, 0, payload);
        self.push(super::session::encode(rtmp_proto::message::csid::COMMAND, &msg, self.chunk_size.get()));
    }

    pub fn queued(&self) -> usize {
        self.queue.borrow().bufs.len()
    }

    /// Asks this connection's own handler to close it (from another connection's context).
    pub fn request_close(&self, reason: String) {
        if self.closed.get() {
            return;
        }
        *self.close_request.borrow_mut() = Some(reason);
        self.conn.post_write();
    }

    /// Has this connection's handler look at it again soon (an asynchronous answer it waits
    /// for has arrived).
    pub fn wake(&self) {
        if !self.closed.get() {
            self.conn.post_read();
        }
    }

    pub fn take_close_request(&self) -> Option<String> {
        self.close_request.borrow_mut().take()
    }

    /// Called by the session when its connection goes away: the handle becomes inert.
    pub fn mark_closed(&self) {
        self.closed.set(true);
        // An HTTP player's queue stays until its response ends: nginx may still be sending
        // what it was handed (it reads those bytes in place), and the rest is the end of a
        // framed body.
        if self.http.is_some() {
            return;
        }
        *self.queue.borrow_mut() = Queue::default();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The HTTP response this peer writes to, if it is an HTTP player.
    pub fn http_out(&self) -> Option<&HttpOut> {
        self.http.as_ref()
    }

    /// Writes as much as the socket takes.
    pub fn flush(&self) -> Flush {
        // Whatever armed the write timer, the caller re-arms or clears it after this flush.
        self.merge_armed.set(false);
        let mut q = self.queue.borrow_mut();
        let direct = match self.http.as_ref().map(|h| (h.is_raw(), h)) {
            Some((true, h)) => match h.direct() {
                Out::Done => true,
                Out::Again => return Flush::Again,
                Out::Error => return Flush::Error,
            },
            _ => false,
        };
        if let Some(http) = self.http.as_ref().filter(|_| !direct) {
            // Counted when handed over: nginx sends them in order.
            let new: usize = q.bufs.iter().skip(http.handed()).map(|b| b.len()).sum();
            let (done, out) = http.write(&q.bufs);
            for _ in 0..done {
                q.pop();
            }
            self.add_sent(new as u64);
            return match out {
                Out::Done => Flush::Done,
                Out::Again => Flush::Again,
                Out::Error => Flush::Error,
            };
        }
        while !q.bufs.is_empty() {
            let n = match self.conn.writev(q.bufs.make_contiguous()) {
                Sent::Bytes(n) => n,
                Sent::Again => return Flush::Again,
                Sent::Error => return Flush::Error,
            };
            if n == 0 {
                return Flush::Again;
            }
            self.add_sent(n as u64);
            let mut left = n;
            while left > 0 {
                let Some(front) = q.bufs.front_mut() else { break };
                if front.len() <= left {
                    left -= front.len();
                    q.pop();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        // A join burst (the GOP cache) grows the queue to hundreds of entries; do not keep that
        // much per player once it is sent.
        if q.bufs.capacity() > SHRINK_ABOVE {
            q.bufs.shrink_to(SHRINK_ABOVE / 4);
            q.is_media.shrink_to(SHRINK_ABOVE / 4);
        }
        Flush::Done
    }
}
