//! The access log: one line per request in NCSA combined format (like
//! varnishncsa), plus how it was served and the time to the response head,
//! written to standard output when `server.access_log` is on.
//!
//! Worker threads never write to standard output themselves: a line goes
//! into a bounded queue (`server.access_log_queue` lines) that one thread of
//! its own drains. When the reader of standard output falls behind (a full
//! pipe, a stalled log shipper), lines are dropped and counted
//! (`lacquer_access_log_dropped_total`) instead of stalling the requests.

use http::{HeaderMap, Method, Response, Version};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::body::RespBody;
use crate::fetch::tunnel::Carried;
use crate::lifecycle::CacheOutcome;

/// What the policy logged for a request (`std.log`, `std.syslog`), carried
/// to the access log in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct VclLog(pub Vec<String>);

/// The longest `vcl_log` field (longer is cut, with `…`).
pub const MAX_VCL_LOG: usize = 2048;

/// What the access log needs from a request, captured before it is handled.
#[derive(Debug)]
pub struct RequestLine {
    method: Method,
    target: String,
    version: Version,
    referer: String,
    user_agent: String,
}

impl RequestLine {
    /// Captures the parts of a request the log line shows.
    pub fn capture(method: &Method, target: &str, version: Version, headers: &HeaderMap) -> Self {
        let h = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .replace('"', "\\\"")
        };
        RequestLine {
            method: method.clone(),
            target: target.to_string(),
            version,
            referer: h(http::header::REFERER),
            user_agent: h(http::header::USER_AGENT),
        }
    }

    /// Queues the line for `resp` for standard output (dropped and counted
    /// when the queue is full). `queue` sizes the queue the first time.
    pub fn log(
        &self,
        client: SocketAddr,
        resp: &Response<RespBody>,
        outcome: CacheOutcome,
        ttfb: Duration,
        queue: usize,
    ) {
        // The field when the response has it in its map; else the body's
        // size (a stored object's fields are written from the object).
        let length;
        let bytes = match resp.headers().get(http::header::CONTENT_LENGTH) {
            Some(v) => v.to_str().unwrap_or("-"),
            None => match http_body::Body::size_hint(resp.body()).exact() {
                Some(n) => {
                    length = n.to_string();
                    &length
                }
                None => "-",
            },
        };
        let mut line = self.format(
            client,
            resp.status(),
            bytes,
            outcome,
            ttfb,
            SystemTime::now(),
        );
        if let Some(VclLog(messages)) = resp.extensions().get::<VclLog>() {
            line.pop();
            push_vcl_log(&mut line, messages);
            line.push('\n');
        }
        writer(queue).send(line);
    }

    /// Queues the line of a pipe once it closed: status 101, the bytes the
    /// backend sent the client through it (`up` client bytes at the end).
    pub fn log_pipe(&self, client: SocketAddr, carried: Carried, ttfb: Duration, queue: usize) {
        let mut line = self.format(
            client,
            http::StatusCode::SWITCHING_PROTOCOLS,
            &carried.down.to_string(),
            CacheOutcome::Pipe,
            ttfb,
            SystemTime::now(),
        );
        line.pop();
        let _ = writeln!(line, " up={}", carried.up);
        writer(queue).send(line);
    }

    fn format(
        &self,
        client: SocketAddr,
        status: http::StatusCode,
        bytes: &str,
        outcome: CacheOutcome,
        ttfb: Duration,
        now: SystemTime,
    ) -> String {
        let mut s = String::with_capacity(200);
        let _ = writeln!(
            s,
            "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" {} {:.3}",
            client.ip(),
            clf_time(now),
            self.method,
            self.target,
            self.version,
            status.as_u16(),
            bytes,
            self.referer,
            self.user_agent,
            outcome.as_str(),
            ttfb.as_secs_f64() * 1000.0,
        );
        s
    }
}

/// Appends ` vcl_log="first; second"` (quotes and backslashes escaped,
/// control characters dropped, at most [`MAX_VCL_LOG`] bytes).
fn push_vcl_log(line: &mut String, messages: &[String]) {
    line.push_str(" vcl_log=\"");
    let start = line.len();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            line.push_str("; ");
        }
        for c in m.chars() {
            if line.len() - start >= MAX_VCL_LOG {
                line.push('…');
                line.push('"');
                return;
            }
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                c if c.is_control() => {}
                c => line.push(c),
            }
        }
    }
    line.push('"');
}

/// Lines dropped because the writer thread fell behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Access log lines dropped so far (standard output too slow).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The process's access log queue and the thread writing it out.
struct Writer {
    queue: Option<SyncSender<String>>,
}

impl Writer {
    fn send(&self, line: String) {
        let Some(queue) = &self.queue else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer, started on first use with a queue of `capacity` lines (one
/// per process: standard output is one too).
fn writer(capacity: usize) -> &'static Writer {
    static WRITER: OnceLock<Writer> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, rx) = sync_channel(capacity.max(1));
        let started = std::thread::Builder::new()
            .name("lacquer-access-log".into())
            .spawn(move || write_out(rx, std::io::stdout()));
        match started {
            Ok(_) => Writer { queue: Some(tx) },
            Err(e) => {
                tracing::error!(error = %e, "access log thread failed to start; lines are dropped");
                Writer { queue: None }
            }
        }
    })
}

/// Drains the queue into `out`, flushing whenever it runs empty; reports
/// drops to the log now and then.
fn write_out(rx: Receiver<String>, out: impl std::io::Write) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
        let dropped = dropped();
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                "access log lines dropped: standard output is not keeping up"
            );
            reported = dropped;
        }
    }
}

/// `22/Nov/2026:05:10:00 +0000` (UTC).
fn clf_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let name = MONTHS[((month - 1) as usize).min(11)];
    format!(
        "{day:02}/{name}/{year}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_format_with_outcome_and_ttfb() {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "curl/8 \"x\"".parse().unwrap());
        let line = RequestLine::capture(&Method::GET, "/a?b=1", Version::HTTP_11, &headers);
        let t = UNIX_EPOCH + Duration::from_secs(1_795_325_400); // 2026-11-22 05:30:00 UTC
        let s = line.format(
            "203.0.113.7:5000".parse().unwrap(),
            http::StatusCode::OK,
            "512",
            CacheOutcome::Hit,
            Duration::from_micros(1250),
            t,
        );
        assert_eq!(
            s,
            "203.0.113.7 - - [22/Nov/2026:05:30:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 512 \"-\" \"curl/8 \\\"x\\\"\" HIT 1.250\n"
        );
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        let mut l = String::from("x");
        push_vcl_log(&mut l, &["a \"q\"".to_string(), "b\\\n".to_string()]);
        assert_eq!(l, "x vcl_log=\"a \\\"q\\\"; b\\\\\"");
        let mut l = String::new();
        push_vcl_log(&mut l, &["y".repeat(5000)]);
        assert_eq!(l.len(), " vcl_log=\"".len() + MAX_VCL_LOG + "…\"".len());
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "29/Feb/2000:00:00:00 +0000"
        );
    }
}
