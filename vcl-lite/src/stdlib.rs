//! The pure parts of vmod std: parsing and formatting of times, byte
//! sizes and addresses, `querysort`, `fnmatch`, `fileread`, `random`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

/// The largest file `std.fileread` reads.
pub const MAX_FILEREAD: u64 = 1 << 20;

/// How many files `std.fileread` keeps (then it reads without keeping).
const MAX_FILEREAD_FILES: usize = 64;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const DAY_NAMES: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Days since 1970-01-01 → (year, month 1–12, day 1–31).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// (year, month 1–12, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Broken-down UTC time.
struct Tm {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    min: i64,
    sec: i64,
    /// 0 = Thursday (1970-01-01).
    weekday: usize,
    yday: i64,
    epoch: i64,
}

fn tm(t: f64) -> Tm {
    let secs = if t.is_finite() {
        t.floor().clamp(-1e15, 1e15) as i64
    } else {
        0
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    Tm {
        year,
        month,
        day,
        hour: rem / 3600,
        min: rem % 3600 / 60,
        sec: rem % 60,
        weekday: days.rem_euclid(7) as usize,
        yday: days - days_from_civil(year, 1, 1) + 1,
        epoch: secs,
    }
}

/// A TIME as VCL turns it into a STRING: an HTTP date
/// (`Thu, 01 Jan 1970 00:00:00 GMT`).
pub fn http_date(t: f64) -> String {
    let tm = tm(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[tm.weekday],
        tm.day,
        MONTHS[(tm.month - 1) as usize],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec
    )
}

/// `std.strftime`: the time in UTC with strftime's common conversions.
pub fn strftime(t: f64, format: &str) -> String {
    let tm = tm(t);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{}", tm.year),
            Some('m') => write!(out, "{:02}", tm.month),
            Some('d') => write!(out, "{:02}", tm.day),
            Some('e') => write!(out, "{:2}", tm.day),
            Some('H') => write!(out, "{:02}", tm.hour),
            Some('M') => write!(out, "{:02}", tm.min),
            Some('S') => write!(out, "{:02}", tm.sec),
            Some('y') => write!(out, "{:02}", tm.year.rem_euclid(100)),
            Some('j') => write!(out, "{:03}", tm.yday),
            Some('a') => write!(out, "{}", DAYS[tm.weekday]),
            Some('A') => write!(out, "{}", DAY_NAMES[tm.weekday]),
            Some('b') | Some('h') => write!(out, "{}", MONTHS[(tm.month - 1) as usize]),
            Some('B') => write!(out, "{}", MONTH_NAMES[(tm.month - 1) as usize]),
            Some('F') => write!(out, "{}-{:02}-{:02}", tm.year, tm.month, tm.day),
            Some('T') => write!(out, "{:02}:{:02}:{:02}", tm.hour, tm.min, tm.sec),
            Some('s') => write!(out, "{}", tm.epoch),
            Some('Z') => write!(out, "UTC"),
            Some('z') => write!(out, "+0000"),
            Some('n') => {
                out.push('\n');
                Ok(())
            }
            Some('t') => {
                out.push('\t');
                Ok(())
            }
            Some('%') => {
                out.push('%');
                Ok(())
            }
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

fn month_of(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

/// `HH:MM:SS` → seconds into the day.
fn clock(s: &str) -> Option<i64> {
    let mut it = s.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

fn at(year: i64, month: u32, day: u32, secs: i64) -> Option<f64> {
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((days_from_civil(year, month, day) * 86_400 + secs) as f64)
}

/// `std.time`'s parsing: an HTTP date (IMF-fixdate, RFC 850, asctime),
/// `YYYY-MM-DDTHH:MM:SS` (UTC), or seconds since the epoch.
pub fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(r) = s.parse::<f64>() {
        return r.is_finite().then_some(r);
    }
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, mon, year, time, "GMT"] => at(
            year.parse().ok()?,
            month_of(mon)?,
            day.parse().ok()?,
            clock(time)?,
        ),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut d = date.split('-');
            let day = d.next()?.parse().ok()?;
            let mon = month_of(d.next()?)?;
            let year: i64 = d.next()?.parse().ok()?;
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            at(year, mon, day, clock(time)?)
        }
        // Sun Nov  6 08:49:37 1994
        [_, mon, day, time, year] => at(
            year.parse().ok()?,
            month_of(mon)?,
            day.parse().ok()?,
            clock(time)?,
        ),
        // 1994-11-06T08:49:37
        [iso] => {
            let (date, time) = iso.split_once('T')?;
            let mut d = date.split('-');
            let year = d.next()?.parse().ok()?;
            let mon: u32 = d.next()?.parse().ok()?;
            let day = d.next()?.parse().ok()?;
            if !(1..=12).contains(&mon) {
                return None;
            }
            at(year, mon, day, clock(time.trim_end_matches('Z'))?)
        }
        _ => None,
    }
}

/// `std.bytes`'s parsing: a number and an optional unit (B, KB, MB, GB,
/// TB; powers of 1024).
pub fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let bytes = value * bytes_unit(unit.trim())? as f64;
    (bytes.is_finite() && bytes.abs() < 9.2e18).then_some(bytes.floor() as i64)
}

/// The size of a byte unit (`""` and `B` are 1).
pub fn bytes_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    })
}

/// `std.ip`'s parsing: an IPv4 or IPv6 address, optionally in brackets
/// or with a port (`192.0.2.1:80`, `[::1]:80`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// `std.querysort`: the query's parameters sorted (bytewise), empty ones
/// dropped; a URL without a query is returned as it is.
pub fn querysort(url: &str) -> Option<String> {
    let (path, query) = url.split_once('?')?;
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if params.is_empty() {
        return Some(path.to_string());
    }
    params.sort_unstable();
    let mut out = String::with_capacity(url.len());
    out.push_str(path);
    out.push('?');
    out.push_str(&params.join("&"));
    Some(out)
}

/// Flags of [`fnmatch`].
#[derive(Debug, Clone, Copy)]
pub struct Glob {
    /// Wildcards and brackets do not match `/`.
    pub pathname: bool,
    /// A backslash is an ordinary character.
    pub noescape: bool,
    /// A leading `.` (after a `/` with `pathname`) must be matched by a
    /// literal `.`.
    pub period: bool,
}

/// Shell-style matching of `subject` against `pattern`.
pub fn fnmatch(pattern: &str, subject: &str, flags: Glob) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = subject.chars().collect();
    glob(&p, &s, 0, flags, &mut 0)
}

/// Steps of one match, bounded so a pathological pattern cannot spin.
const MAX_GLOB_STEPS: u32 = 100_000;

fn leading_period(s: &[char], i: usize, flags: Glob) -> bool {
    flags.period && s.get(i) == Some(&'.') && (i == 0 || (flags.pathname && s[i - 1] == '/'))
}

fn glob(p: &[char], s: &[char], start: usize, flags: Glob, steps: &mut u32) -> bool {
    let (mut pi, mut si) = (0, start);
    while pi < p.len() {
        *steps += 1;
        if *steps > MAX_GLOB_STEPS {
            return false;
        }
        match p[pi] {
            '*' => {
                if leading_period(s, si, flags) {
                    return false;
                }
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                let rest = &p[pi..];
                let mut k = si;
                loop {
                    if glob_from(rest, s, k, flags, steps) {
                        return true;
                    }
                    if k >= s.len() || (flags.pathname && s[k] == '/') {
                        return false;
                    }
                    k += 1;
                }
            }
            '?' => {
                match s.get(si) {
                    None => return false,
                    Some('/') if flags.pathname => return false,
                    Some(_) if leading_period(s, si, flags) => return false,
                    Some(_) => {}
                }
                pi += 1;
                si += 1;
            }
            '[' => {
                let Some(&c) = s.get(si) else { return false };
                if (flags.pathname && c == '/') || leading_period(s, si, flags) {
                    return false;
                }
                match bracket(p, pi, c, flags) {
                    Some((matched, next)) => {
                        if !matched {
                            return false;
                        }
                        pi = next;
                        si += 1;
                    }
                    // No closing `]`: a literal `[`.
                    None => {
                        if c != '[' {
                            return false;
                        }
                        pi += 1;
                        si += 1;
                    }
                }
            }
            '\\' if !flags.noescape && pi + 1 < p.len() => {
                if s.get(si) != Some(&p[pi + 1]) {
                    return false;
                }
                pi += 2;
                si += 1;
            }
            c => {
                if s.get(si) != Some(&c) {
                    return false;
                }
                pi += 1;
                si += 1;
            }
        }
    }
    si == s.len()
}

fn glob_from(p: &[char], s: &[char], start: usize, flags: Glob, steps: &mut u32) -> bool {
    glob(p, s, start, flags, steps)
}

/// `[…]` at `p[start]` against `c`: whether it matches, and where the
/// pattern goes on; `None` when it is not closed.
fn bracket(p: &[char], start: usize, c: char, flags: Glob) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == '\\' && !flags.noescape {
            i += 1;
            lo = *p.get(i)?;
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let mut hi = p[i + 2];
            i += 2;
            if hi == '\\' && !flags.noescape {
                i += 1;
                hi = *p.get(i)?;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
        i += 1;
    }
}

/// `std.fileread`: the file's contents, read once and kept; `None` when
/// it cannot be read or is larger than [`MAX_FILEREAD`].
pub fn fileread(path: &str) -> Option<Arc<str>> {
    static FILES: OnceLock<Mutex<HashMap<String, Arc<str>>>> = OnceLock::new();
    let files = FILES.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = files.lock().ok()?.get(path) {
        return Some(found.clone());
    }
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILEREAD {
        return None;
    }
    let text: Arc<str> = std::fs::read_to_string(path).ok()?.into();
    if text.len() as u64 > MAX_FILEREAD {
        return None;
    }
    let mut files = files.lock().ok()?;
    if files.len() < MAX_FILEREAD_FILES {
        files.insert(path.to_string(), text.clone());
    }
    Some(text)
}

/// `std.random`: uniform in `[lo, hi)` from a per-thread xorshift
/// generator seeded from the clock and the thread.
pub fn random(lo: f64, hi: f64) -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let here = &t as *const u64 as u64;
            (t ^ here.rotate_left(32)) | 1
        });
    }
    let x = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
    lo + (hi - lo) * unit
}

/// `X.key(s)` of a shard director: `s` hashed to 32 bits (FNV-1a), the
/// same on every node and every run.
pub fn shard_key(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The current time, in seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_both_ways() {
        assert_eq!(http_date(0.0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777.9), "Sun, 06 Nov 1994 08:49:37 GMT");
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "1994-11-06T08:49:37",
            "784111777",
        ] {
            assert_eq!(parse_time(s), Some(784_111_777.0), "{s}");
        }
        assert_eq!(parse_time("1.5"), Some(1.5));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_time("1994-13-06T08:49:37"), None);
        assert_eq!(http_date(f64::NAN), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn strftime_conversions() {
        assert_eq!(
            strftime(784_111_777.0, "%Y-%m-%d %H:%M:%S %a %b %j %s %% %Z %q"),
            "1994-11-06 08:49:37 Sun Nov 310 784111777 % UTC %q"
        );
        assert_eq!(
            strftime(0.0, "%F %T %A %B %e|"),
            "1970-01-01 00:00:00 Thursday January  1|"
        );
    }

    #[test]
    fn bytes_and_ips() {
        assert_eq!(parse_bytes("512"), Some(512));
        assert_eq!(parse_bytes(" 10KB "), Some(10240));
        assert_eq!(parse_bytes("1.5MB"), Some(1_572_864));
        assert_eq!(parse_bytes("1 GB"), Some(1 << 30));
        assert_eq!(parse_bytes("1kb"), None);
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("1e30TB"), None);
        assert_eq!(parse_ip("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_ip("192.0.2.1:80"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_ip("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("example.com"), None);
    }

    #[test]
    fn querysort_sorts_and_drops_empty_params() {
        assert_eq!(querysort("/a?b=2&a=1&&c").as_deref(), Some("/a?a=1&b=2&c"));
        assert_eq!(querysort("/a?").as_deref(), Some("/a"));
        assert_eq!(querysort("/a"), None);
    }

    #[test]
    fn globs() {
        let f = Glob {
            pathname: true,
            noescape: false,
            period: false,
        };
        assert!(fnmatch("/static/*.css", "/static/a.css", f));
        assert!(!fnmatch("/static/*.css", "/static/x/a.css", f));
        assert!(fnmatch(
            "/static/*.css",
            "/static/x/a.css",
            Glob {
                pathname: false,
                ..f
            }
        ));
        assert!(fnmatch("a?c", "abc", f));
        assert!(!fnmatch("a?c", "a/c", f));
        assert!(fnmatch("[a-c]x[!0-9]", "bxz", f));
        assert!(!fnmatch("[a-c]x[!0-9]", "bx5", f));
        assert!(fnmatch("\\*", "*", f));
        assert!(!fnmatch("\\*", "a", f));
        assert!(fnmatch(
            "\\*",
            "\\a",
            Glob {
                noescape: true,
                ..f
            }
        ));
        assert!(fnmatch("[", "[", f));
        assert!(!fnmatch("*", ".hidden", Glob { period: true, ..f }));
        assert!(fnmatch("*", ".hidden", f));
        assert!(fnmatch("", "", f));
        assert!(!fnmatch("a", "", f));
        // Pathological patterns end.
        let p = "*a".repeat(30);
        assert!(!fnmatch(&p, &("a".repeat(40) + "b"), f));
        assert!(fnmatch("*a*a", "xaya", f));
    }

    #[test]
    fn random_stays_in_range() {
        for _ in 0..1000 {
            let r = random(1.0, 2.0);
            assert!((1.0..2.0).contains(&r));
        }
    }
}
