//! One HTTP call on nginx's event loop: connect (trying each resolved address), send the request,
//! read the response into the sans-IO parser, each step under its own inactivity timer.

use std::cell::RefCell;
use std::fmt;
use std::mem;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use rtmp_proto::http::{HttpError, Method, Request, Response, ResponseParser};

use crate::log_debug;
use crate::ngx::log::Log;
use crate::ngx::timer::{Again, Timer};
use crate::ngx::upstream::{strerror, ConnectError, Io, UpConn, UpEvent};

use super::url::NotifyUrl;

/// What to send and how long to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOptions {
    /// Inactivity limit of each step (connect, send, every read), as `netcall_timeout`.
    pub timeout_ms: u64,
    /// The most bytes of response read (head, framing and body), as `netcall_buffer`.
    pub max_response: usize,
    pub method: Method,
    /// Form fields: the body of a POST, the query string of a GET.
    pub form: Vec<(String, String)>,
    /// When set, a POST with this JSON body instead of the form (whatever `method` says).
    pub json: Option<String>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions { timeout_ms: 10_000, max_response: 1024, method: Method::Post, form: Vec::new(), json: None }
    }
}

/// Why a call gave no response. Displays as a reason for a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No address took the connection: each address tried, with what went wrong.
    Connect(Vec<(SocketAddr, String)>),
    /// A step saw no progress for `ms`: sending the request, or waiting for the response.
    Timeout {
        ms: u64,
        waiting: &'static str,
    },
    Send {
        addr: SocketAddr,
        reason: String,
    },
    Recv {
        addr: SocketAddr,
        reason: String,
    },
    /// The answer was not a usable HTTP response (garbage, cut short, too large).
    Response(HttpError),
    /// nginx closed the connection while shutting the worker down.
    Shutdown,
    /// No socket or no free connection in the worker (nginx logged the details).
    NoConnection(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect(tries) if tries.is_empty() => write!(f, "no address to connect to"),
            CallError::Connect(tries) => {
                for (i, (addr, why)) in tries.iter().enumerate() {
                    write!(f, "{}connect to {addr} failed: {why}", if i > 0 { "; " } else { "" })?;
                }
                Ok(())
            }
            CallError::Timeout { ms, waiting } => write!(f, "timed out after {ms} ms {waiting}"),
            CallError::Send { addr, reason } => write!(f, "send() to {addr} failed: {reason}"),
            CallError::Recv { addr, reason } => write!(f, "recv() from {addr} failed: {reason}"),
            CallError::Response(e) => write!(f, "{e}"),
            CallError::Shutdown => write!(f, "worker is shutting down"),
            CallError::NoConnection(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for CallError {}

type Done = Box<dyn FnOnce(Result<Response, CallError>)>;
type Outcome = Result<Response, CallError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
    Finished,
}

/// What the state machine wants after an event.
enum Next {
    Wait,
    Finish(Outcome),
}

struct Call {
    url: &'static NotifyUrl,
    timeout_ms: u64,
    request: Vec<u8>,
    sent: usize,
    parser: ResponseParser,
    /// Index of the next address of `url` to try.
    next_addr: usize,
    addr: Option<SocketAddr>,
    failures: Vec<(SocketAddr, String)>,
    phase: Phase,
    conn: Option<UpConn>,
    done: Option<Done>,
    /// True while `call()` runs: an outcome reached then is delivered from `later`.
    starting: bool,
    later: Option<Timer>,
    outcome: Option<Outcome>,
    /// A detached call keeps itself alive until `done` ran.
    keep: Option<Rc<RefCell<Call>>>,
    me: Weak<RefCell<Call>>,
}

/// A call in flight. Dropping it cancels the call: the connection closes and `done` never runs.
pub struct CallHandle {
    call: Option<Rc<RefCell<Call>>>,
}

impl CallHandle {
    /// `done` has not run yet.
    pub fn is_pending(&self) -> bool {
        self.call.as_ref().is_some_and(|c| c.try_borrow().map_or(true, |c| c.done.is_some()))
    }

    /// Lets the call run to its end without a handle (`done` still runs once).
    pub fn detach(mut self) {
        if let Some(rc) = self.call.take() {
            if let Ok(mut c) = rc.try_borrow_mut() {
                if c.done.is_some() {
                    c.keep = Some(rc.clone());
                }
            }
        }
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        let Some(rc) = self.call.take() else { return };
        // Taken out first and dropped after the borrow: closing and the closures' captures may
        // run arbitrary drops.
        let parts = rc.try_borrow_mut().ok().map(|mut c| {
            c.phase = Phase::Finished;
            (c.conn.take(), c.done.take(), c.later.take(), c.outcome.take())
        });
        drop(parts);
    }
}

/// Starts a request to `url`; `done` runs exactly once later, on nginx's event loop (never inside
/// `call` itself), with the response (any status) or an error. Dropping the returned handle
/// cancels the call. `log` is copied for the connection (its context handler dropped), so it only
/// needs to be valid during this call.
pub fn call(
    url: &'static NotifyUrl,
    opts: CallOptions,
    log: Log,
    done: impl FnOnce(Result<Response, CallError>) + 'static,
) -> CallHandle {
    let request = match &opts.json {
        Some(json) => Request::with_json(url.host_header(), url.path_and_query(), json),
        None => {
            let form: Vec<(&str, &str)> = opts.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Request::with_form(opts.method, url.host_header(), url.path_and_query(), &form)
        }
    };
    let rc = Rc::new(RefCell::new(Call {
        url,
        timeout_ms: opts.timeout_ms,
        request: request.encode(),
        sent: 0,
        parser: ResponseParser::new(opts.max_response),
        next_addr: 0,
        addr: None,
        failures: Vec::new(),
        phase: Phase::Connecting,
        conn: None,
        done: Some(Box::new(done)),
        starting: true,
        later: None,
        outcome: None,
        keep: None,
        me: Weak::new(),
    }));
    let next = match rc.try_borrow_mut() {
        Ok(mut c) => {
            c.me = Rc::downgrade(&rc);
            c.connect_next(log)
        }
        Err(_) => Next::Wait,
    };
    if let Next::Finish(r) = next {
        finish(&rc, r);
    }
    if let Ok(mut c) = rc.try_borrow_mut() {
        c.starting = false;
    }
    CallHandle { call: Some(rc) }
}

fn on_event(me: &Weak<RefCell<Call>>, ev: UpEvent) {
    let Some(rc) = me.upgrade() else { return };
    let next = match rc.try_borrow_mut() {
        Ok(mut c) => c.on_event(ev),
        Err(_) => return,
    };
    if let Next::Finish(r) = next {
        finish(&rc, r);
    }
}

/// Closes the connection and runs `done` (or schedules it, inside `call()`).
fn finish(rc: &Rc<RefCell<Call>>, r: Outcome) {
    let Ok(mut c) = rc.try_borrow_mut() else { return };
    c.phase = Phase::Finished;
    let conn = c.conn.take();
    let starting = c.starting;
    if let Some(conn) = &conn {
        match &r {
            Ok(resp) => log_debug!(conn.log(), "netcall: {} answered {}", c.url.as_str(), resp.status),
            Err(e) => log_debug!(conn.log(), "netcall: {} failed: {}", c.url.as_str(), e),
        }
    }
    if starting {
        let weak = c.me.clone();
        let timer = Timer::new(move || {
            deliver(&weak);
            Again::Stop
        });
        timer.arm(0);
        c.later = Some(timer);
        c.outcome = Some(r);
        drop(c);
        drop(conn);
        return;
    }
    let done = c.done.take();
    drop(c);
    drop(conn);
    if let Some(done) = done {
        done(r);
    }
    release(rc);
}

/// The deferred end of a call that finished inside `call()`.
fn deliver(weak: &Weak<RefCell<Call>>) {
    let Some(rc) = weak.upgrade() else { return };
    let parts = rc.try_borrow_mut().ok().map(|mut c| (c.done.take(), c.outcome.take()));
    if let Some((Some(done), Some(r))) = parts {
        done(r);
    }
    release(&rc);
}

/// Ends a detached call's hold on itself.
fn release(rc: &Rc<RefCell<Call>>) {
    let keep = rc.try_borrow_mut().ok().and_then(|mut c| c.keep.take());
    drop(keep);
}

impl Call {
    fn conn(&self) -> Option<&UpConn> {
        self.conn.as_ref()
    }

    /// Connects to the next address; one refusing at once is noted and the next one tried.
    fn connect_next(&mut self, log: Log) -> Next {
        while let Some(&addr) = self.url.addrs().get(self.next_addr) {
            self.next_addr += 1;
            match UpConn::connect(&addr, log) {
                Err(ConnectError::Refused(e)) => self.failures.push((addr, strerror(e))),
                Err(ConnectError::NoConnection) => {
                    return Next::Finish(Err(CallError::NoConnection(format!(
                        "no connection available to connect to {addr} (see the error log)"
                    ))))
                }
                Ok((conn, connected)) => {
                    let me = self.me.clone();
                    conn.set_handler(move |ev| on_event(&me, ev));
                    log_debug!(conn.log(), "netcall: connecting to {} for {}", addr, self.url.as_str());
                    self.addr = Some(addr);
                    let old = self.conn.replace(conn);
                    drop(old);
                    if connected {
                        return self.start_sending();
                    }
                    self.phase = Phase::Connecting;
                    return self.wait_write();
                }
            }
        }
        Next::Finish(Err(CallError::Connect(mem::take(&mut self.failures))))
    }

    /// The current connection attempt failed: note why and try the next address.
    fn connect_failed(&mut self, why: String) -> Next {
        if let Some(addr) = self.addr {
            self.failures.push((addr, why));
        }
        // The failed connection's log (a copy) is what the next attempt copies; it is closed
        // only once the next one exists.
        let old = self.conn.take();
        let next = match &old {
            Some(c) => self.connect_next(c.log()),
            None => Next::Finish(Err(CallError::Connect(mem::take(&mut self.failures)))),
        };
        drop(old);
        next
    }

    fn on_event(&mut self, ev: UpEvent) -> Next {
        match (self.phase, ev) {
            (Phase::Finished, _) => Next::Wait,
            (_, UpEvent::Shutdown) => Next::Finish(Err(CallError::Shutdown)),
            (Phase::Connecting, UpEvent::WriteTimeout | UpEvent::ReadTimeout) => {
                self.connect_failed(format!("timed out after {} ms", self.timeout_ms))
            }
            (Phase::Connecting, UpEvent::Write | UpEvent::Read) => {
                match self.conn().map_or(nginx_sys::EBADF as i32, |c| c.socket_error()) {
                    0 => self.start_sending(),
                    err => self.connect_failed(strerror(err)),
                }
            }
            (Phase::Sending, UpEvent::Write) => self.send(),
            (Phase::Sending, UpEvent::WriteTimeout) => {
                Next::Finish(Err(CallError::Timeout { ms: self.timeout_ms, waiting: "sending the request" }))
            }
            (Phase::Receiving, UpEvent::Read) => self.receive(),
            (Phase::Receiving, UpEvent::ReadTimeout) => {
                Next::Finish(Err(CallError::Timeout { ms: self.timeout_ms, waiting: "waiting for the response" }))
            }
            // A read while sending waits for the request to be out (receive() then reads what
            // came); writability while receiving means nothing.
            _ => Next::Wait,
        }
    }

    fn start_sending(&mut self) -> Next {
        self.phase = Phase::Sending;
        if let Some(c) = self.conn() {
            c.clear_timer(true);
        }
        self.send()
    }

    /// Waits for writability (connect completing, or room to send) under a timer that holds
    /// up a graceful shutdown: the request should get out, even from an exiting worker.
    fn wait_write(&mut self) -> Next {
        let Some(c) = self.conn.as_ref() else { return Next::Finish(Err(CallError::Shutdown)) };
        c.timer(true, self.timeout_ms, false);
        if !c.want_write() {
            return Next::Finish(Err(CallError::NoConnection(
                "cannot wait for the connection (see the error log)".into(),
            )));
        }
        Next::Wait
    }

    fn send(&mut self) -> Next {
        let Some(addr) = self.addr else { return Next::Finish(Err(CallError::Shutdown)) };
        loop {
            let Some(c) = self.conn.as_ref() else { return Next::Finish(Err(CallError::Shutdown)) };
            if self.sent >= self.request.len() {
                // All out: now only reads matter. Waiting for the answer does not hold up a
                // graceful shutdown (the call fails when the worker exits).
                self.phase = Phase::Receiving;
                c.clear_timer(true);
                let _ = c.want_write();
                return self.receive();
            }
            match c.send(&self.request[self.sent..]) {
                Io::Done(n) => self.sent += n,
                Io::Again => return self.wait_write(),
                Io::Error(e) => return Next::Finish(Err(CallError::Send { addr, reason: strerror(e) })),
                Io::Eof => {
                    return Next::Finish(Err(CallError::Send { addr, reason: "connection closed".into() }));
                }
            }
        }
    }

    fn receive(&mut self) -> Next {
        let Some(addr) = self.addr else { return Next::Finish(Err(CallError::Shutdown)) };
        let mut buf = [0u8; 4096];
        loop {
            let Some(c) = self.conn.as_ref() else { return Next::Finish(Err(CallError::Shutdown)) };
            match c.recv(&mut buf) {
                Io::Done(n) => match self.parser.feed(&buf[..n]) {
                    Ok(Some(resp)) => return Next::Finish(Ok(resp)),
                    Ok(None) => {}
                    Err(e) => return Next::Finish(Err(CallError::Response(e))),
                },
                Io::Eof => return Next::Finish(self.parser.eof().map_err(CallError::Response)),
                Io::Again => {
                    c.timer(false, self.timeout_ms, true);
                    if !c.want_read() {
                        return Next::Finish(Err(CallError::NoConnection(
                            "cannot wait for the response (see the error log)".into(),
                        )));
                    }
                    return Next::Wait;
                }
                Io::Error(e) => return Next::Finish(Err(CallError::Recv { addr, reason: strerror(e) })),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_well() {
        let a: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let b: SocketAddr = "[::1]:9999".parse().unwrap();
        let e = CallError::Connect(vec![(a, "Connection refused".into())]);
        assert_eq!(e.to_string(), "connect to 127.0.0.1:9999 failed: Connection refused");
        let e = CallError::Connect(vec![(b, "Connection refused".into()), (a, "timed out after 10 ms".into())]);
        assert_eq!(
            e.to_string(),
            "connect to [::1]:9999 failed: Connection refused; connect to 127.0.0.1:9999 failed: timed out after 10 ms"
        );
        let e = CallError::Timeout { ms: 10000, waiting: "waiting for the response" };
        assert_eq!(e.to_string(), "timed out after 10000 ms waiting for the response");
        assert_eq!(CallError::Response(HttpError::TooLarge(1024)).to_string(), "response larger than 1024 bytes");
        assert!(CallError::Response(HttpError::Malformed("x".into())).to_string().starts_with("bad response: "));
    }
}
