//! The control location's answer: `.../<section>/<method>?srv=&app=&name=&addr=&clientid=`
//! (`newname=` for redirects), as the C module parses it (the last two path segments), run on
//! this worker at once and on the others through the board; the body is the count.

use nginx_sys::ngx_int_t;
use serde_json::json;

use crate::core::running_servers;
use crate::log_info;
use crate::ngx::http::{Content, Request, NGX_DECLINED, NGX_DONE, NGX_ERROR};
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};

use super::board::{self, board, execute, pid, worker_slot};
use super::{ControlHttpModule, DROP, RECORD, REDIRECT};

/// How long to wait for the other workers' answers.
const WAIT_MS: u64 = 1000;
const STEP_MS: u64 = 10;

pub struct ControlApi;

impl Content for ControlApi {
    fn handle(r: Request) -> ngx_int_t {
        let mask = r.loc_conf::<ControlHttpModule>().mask.unwrap_or(0);
        let uri = r.uri();
        let mut parts = uri.split('/').filter(|p| !p.is_empty()).rev();
        let (Some(method), Some(section)) = (parts.next(), parts.next()) else { return NGX_DECLINED };
        let bit = match section {
            "record" => RECORD,
            "drop" => DROP,
            "redirect" => REDIRECT,
            _ => return NGX_DECLINED,
        };
        if mask & bit == 0 {
            return NGX_DECLINED;
        }
        let record = section == "record";
        if record && !matches!(method, "start" | "stop")
            || !record && !matches!(method, "publisher" | "subscriber" | "client")
        {
            log_info!(r.log(), "rtmp control: undefined method \"{}\"", method);
            return r.status(500);
        }
        let srv = match r.arg("srv").map(|s| s.parse::<usize>()) {
            None => 0,
            Some(Ok(i)) => i,
            Some(Err(_)) => return r.status(500),
        };
        if srv >= running_servers().len() {
            log_info!(r.log(), "rtmp control: server index {} out of range", srv);
            return r.status(500);
        }
        let newname = r.arg("newname").filter(|n| !n.is_empty());
        if section == "redirect" && newname.is_none() {
            log_info!(r.log(), "rtmp control: newname not specified");
            return r.status(500);
        }
        let clientid = match r.arg("clientid").map(|s| s.parse::<u64>()) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(_)) => return r.status(500),
        };
        let cmd = json!({
            "action": section,
            "who": if record { "publisher" } else { method },
            "start": method == "start",
            "rec": r.arg("rec").unwrap_or_default(),
            "srv": srv,
            "app": r.arg("app").filter(|s| !s.is_empty()),
            "name": r.arg("name").filter(|s| !s.is_empty()),
            "addr": r.arg("addr").filter(|s| !s.is_empty()),
            "clientid": clientid,
            "newname": newname,
        });
        let rc = r.discard_body();
        if rc != crate::ngx::http::NGX_OK {
            return rc;
        }
        let local = execute(&cmd);
        log_info!(r.log(), "rtmp control: {} {}: {} on this worker", section, method, local);
        let Some(b) = board() else { return answer(r, local) };
        if b.answers(u64::MAX, worker_slot()).1 == 0 {
            // No other worker is alive: nothing to wait for.
            return answer(r, local);
        }
        let bytes = cmd.to_string().into_bytes();
        let started = now_ms();
        let mut seq: Option<u64> = None;
        let timer = Timer::new(move || {
            let Some(b) = board() else {
                r.finalize(answer(r, local));
                return Again::Stop;
            };
            let waited = now_ms().saturating_sub(started);
            let Some(s) = seq else {
                // Another worker's command is on the board: wait for it to finish.
                match b.post(pid(), &bytes) {
                    Some(s) => {
                        board::mark_done(s);
                        seq = Some(s);
                    }
                    None if waited < WAIT_MS => return Again::After(STEP_MS),
                    None => {
                        log_info!(r.log(), "rtmp control: the board stayed busy; answered for this worker only");
                        r.finalize(answer(r, local));
                        return Again::Stop;
                    }
                }
                return Again::After(STEP_MS);
            };
            let (sum, waiting) = b.answers(s, worker_slot());
            if waiting > 0 && waited < WAIT_MS {
                return Again::After(STEP_MS);
            }
            b.release(pid());
            if waiting > 0 {
                log_info!(r.log(), "rtmp control: {} worker(s) did not answer in time", waiting);
            }
            r.finalize(answer(r, local + sum));
            Again::Stop
        });
        timer.arm(0);
        if r.keep(timer).is_none() {
            return NGX_ERROR;
        }
        r.hold();
        NGX_DONE
    }
}

/// The count of sessions acted on (for `record`, of recorders asked to start or stop; none is 204
/// as in the C module).
fn answer(r: Request, count: u64) -> ngx_int_t {
    if count == 0 && r.uri().contains("/record/") {
        return r.status(204);
    }
    r.respond(200, Some("text/plain"), count.to_string().as_bytes())
}
