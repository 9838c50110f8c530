//! What a server's cache holds after a run: objects, and the bytes the server
//! charges against its storage budget. The `zipf` scenario shows it, because
//! there each server's per-object accounting decides how many of the keys fit.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::probe::http_get;
use crate::process::find_program;

/// How to ask a running server what its cache holds.
pub(crate) enum Holdings {
    /// `GET /counts` on lacquer's admin listener (`keys N`, `bytes N`).
    Lacquer { admin: SocketAddr },
    /// `varnishstat -n WORKDIR -1`: `MAIN.n_object` and the malloc
    /// stevedore's `SMA.s0.g_bytes`.
    Varnish { workdir: PathBuf },
    /// The files under nginx's cache directory, and the filesystem blocks
    /// they take (what nginx counts against `max_size`).
    Nginx { cache_dir: PathBuf },
}

/// A cache's contents at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) objects: u64,
    /// Bytes charged against the storage budget.
    pub(crate) bytes: u64,
}

impl Held {
    /// `29,312 objects, 100.0 MiB charged (3,577 B each)`.
    pub(crate) fn describe(&self) -> String {
        let each = self
            .bytes
            .checked_div(self.objects)
            .map_or_else(String::new, |b| format!(" ({} B each)", thousands(b)));
        format!(
            "holds {} objects, {:.1} MiB charged{each}",
            thousands(self.objects),
            self.bytes as f64 / (1024.0 * 1024.0)
        )
    }
}

/// A cache holding less than this share of its budget after a run has not
/// reached steady state: it has not had to evict yet, or only just.
pub(crate) const FULL_SHARE: f64 = 0.9;
/// A cache holding more than this share of its budget after a run is not
/// keeping to it (nginx's cache manager deletes files in batches, behind
/// the inserts).
pub(crate) const OVER_SHARE: f64 = 1.1;

impl Held {
    /// A note when the bytes charged are not about the budget of
    /// `budget_mib` MiB: under `FULL_SHARE` of it the run measured a cache
    /// still filling, over `OVER_SHARE` a cache bigger than the others'.
    pub(crate) fn budget_note(&self, budget_mib: u64) -> Option<String> {
        let budget = (budget_mib << 20) as f64;
        if budget <= 0.0 {
            return None;
        }
        let share = self.bytes as f64 / budget;
        let what = if share < FULL_SHARE {
            "CACHE NOT FULL after the run"
        } else if share > OVER_SHARE {
            "OVER BUDGET after the run"
        } else {
            return None;
        };
        let advice = if share < FULL_SHARE {
            "; raise --zipf-warmup"
        } else {
            ""
        };
        Some(format!(
            "{what} ({:.0}% of {budget_mib} MiB{advice}): {}",
            share * 100.0,
            self.describe()
        ))
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Holdings {
    /// Asks the server; an error says why it could not be read.
    pub(crate) fn read(&self) -> Result<Held, String> {
        match self {
            Holdings::Lacquer { admin } => {
                let resp =
                    http_get(*admin, "/counts").map_err(|e| format!("GET {admin}/counts: {e}"))?;
                if resp.status != 200 {
                    return Err(format!("GET {admin}/counts: status {}", resp.status));
                }
                parse_lacquer_counts(&String::from_utf8_lossy(&resp.body))
                    .ok_or_else(|| "GET /counts: no `keys` and `bytes` lines".to_owned())
            }
            Holdings::Varnish { workdir } => {
                let bin = find_program("varnishstat")
                    .ok_or_else(|| "varnishstat is not installed".to_owned())?;
                let out = Command::new(bin)
                    .arg("-n")
                    .arg(workdir)
                    .arg("-1")
                    .output()
                    .map_err(|e| format!("varnishstat: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "varnishstat: {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                parse_varnishstat(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
                    "varnishstat: no MAIN.n_object or SMA.s0.g_bytes counter".to_owned()
                })
            }
            Holdings::Nginx { cache_dir } => {
                let mut held = Held {
                    objects: 0,
                    bytes: 0,
                };
                walk_files(cache_dir, &mut held)
                    .map_err(|e| format!("read {}: {e}", cache_dir.display()))?;
                Ok(held)
            }
        }
    }
}

/// lacquer's `GET /counts` body: `keys N`, `bytes N`, `bans N` lines.
pub(crate) fn parse_lacquer_counts(body: &str) -> Option<Held> {
    let field = |name: &str| {
        body.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    };
    Some(Held {
        objects: field("keys")?,
        bytes: field("bytes")?,
    })
}

/// `varnishstat -1` lines: `NAME   VALUE   RATE   DESCRIPTION`.
pub(crate) fn parse_varnishstat(out: &str) -> Option<Held> {
    let field = |name: &str| {
        out.lines()
            .map(|l| l.split_whitespace())
            .find_map(|mut words| {
                (words.next() == Some(name)).then(|| words.next()?.parse().ok())?
            })
    };
    Some(Held {
        objects: field("MAIN.n_object")?,
        bytes: field("SMA.s0.g_bytes")?,
    })
}

/// Counts the regular files under `dir` and their allocated bytes (512-byte
/// blocks, as `du` does). nginx's cache manager may be deleting files as
/// this walks: files gone meanwhile are skipped.
fn walk_files(dir: &Path, held: &mut Held) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk_files(&entry.path(), held)?;
        } else if meta.is_file() {
            held.objects += 1;
            held.bytes += meta.blocks() * 512;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lacquer_counts() {
        let held = parse_lacquer_counts("keys 29312\nbytes 104855552\nbans 0\n").unwrap();
        assert_eq!(
            held,
            Held {
                objects: 29312,
                bytes: 104_855_552
            }
        );
        assert_eq!(parse_lacquer_counts("keys 1\n"), None);
        assert_eq!(parse_lacquer_counts("keys x\nbytes 2\n"), None);
    }

    #[test]
    fn varnishstat_counters() {
        let out = "\
MAIN.n_object               70210          .   object structs made
MAIN.n_objectcore           70215          .   objectcore structs made
SMA.s0.g_bytes          104857000          .   Bytes outstanding
SMA.s0.g_space                600          .   Bytes available
";
        let held = parse_varnishstat(out).unwrap();
        assert_eq!((held.objects, held.bytes), (70210, 104_857_000));
        assert_eq!(parse_varnishstat("MAIN.n_object 1 . x\n"), None);
    }

    #[test]
    fn described() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let held = Held {
            objects: 25_600,
            bytes: 100 << 20,
        };
        assert_eq!(
            held.describe(),
            "holds 25,600 objects, 100.0 MiB charged (4,096 B each)"
        );
        let empty = Held {
            objects: 0,
            bytes: 0,
        };
        assert_eq!(empty.describe(), "holds 0 objects, 0.0 MiB charged");
    }

    #[test]
    fn full_or_not() {
        let held = |bytes| Held { objects: 10, bytes };
        assert_eq!(held(95 << 20).budget_note(100), None);
        assert_eq!(held(90 << 20).budget_note(100), None);
        assert_eq!(held(110 << 20).budget_note(100), None);
        let note = held(45 << 20).budget_note(100).unwrap();
        assert!(
            note.starts_with(
                "CACHE NOT FULL after the run (45% of 100 MiB; raise --zipf-warmup): holds 10 objects"
            ),
            "{note}"
        );
        let note = held(400 << 20).budget_note(100).unwrap();
        assert!(
            note.starts_with("OVER BUDGET after the run (400% of 100 MiB): holds 10 objects"),
            "{note}"
        );
        assert_eq!(held(0).budget_note(0), None);
    }

    #[test]
    fn nginx_files() {
        let dir = crate::process::TempDir::new("holdings-test").unwrap();
        fs::create_dir_all(dir.0.join("a/b")).unwrap();
        fs::write(dir.0.join("a/b/one"), [0u8; 100]).unwrap();
        fs::write(dir.0.join("a/two"), [0u8; 5000]).unwrap();
        let held = Holdings::Nginx {
            cache_dir: dir.0.clone(),
        }
        .read()
        .unwrap();
        assert_eq!(held.objects, 2);
        // Whole blocks: at least the two files' bytes.
        assert!(held.bytes >= 5100, "{held:?}");
        assert!(Holdings::Nginx {
            cache_dir: dir.0.join("missing")
        }
        .read()
        .is_err());
    }
}
