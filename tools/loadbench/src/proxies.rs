//! Command lines and configuration of the proxies: lacquer, Varnish, nginx, HAProxy.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{describe, find_program, free_port, running_as_root, RunningServer, TempDir};

use crate::holdings::Holdings;
use crate::scenarios::ServerKind;

/// Storage budget given to every proxy under test, in MiB, unless a
/// scenario says otherwise (`Scenario::storage_mib`).
pub(crate) const STORAGE_MIB: u64 = 256;

/// A server's command line and how to ask it what its cache holds.
pub(crate) struct ServerSpec {
    pub(crate) cmd: Command,
    pub(crate) holdings: Holdings,
}

/// The lacquer command line with a storage budget of `storage_mib` MiB. This
/// is the one place to adjust if the CLI changes. The admin listener gets a
/// free port too (its default, 6082, would clash between the two nodes of
/// `scale-out`).
pub(crate) fn lacquer_command(
    bin: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    admin: SocketAddr,
    storage_mib: u64,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("-a")
        .arg(listen.to_string())
        .arg("-b")
        .arg(origin.to_string())
        .arg("--storage")
        .arg(format!("{storage_mib}MiB"))
        .arg("-T")
        .arg(admin.to_string());
    cmd
}

/// Builds the command for `kind` with a storage budget of `storage_mib`
/// MiB, or `Ok(None)` if its binary isn't installed.
pub(crate) fn server_command(
    kind: ServerKind,
    lacquer_bin: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
    storage_mib: u64,
) -> Result<Option<ServerSpec>, String> {
    match kind {
        ServerKind::Lacquer => {
            let admin = free_port()?;
            Ok(Some(ServerSpec {
                cmd: lacquer_command(lacquer_bin, listen, origin, admin, storage_mib),
                holdings: Holdings::Lacquer { admin },
            }))
        }
        ServerKind::LacquerBuiltin | ServerKind::LacquerPolicy => {
            let vcl = write_vcl(kind, origin, dir)?;
            let admin = free_port()?;
            // The policy's backend replaces `-b`.
            let mut cmd = lacquer_command(lacquer_bin, listen, origin, admin, storage_mib);
            cmd.arg("-f").arg(vcl);
            Ok(Some(ServerSpec {
                cmd,
                holdings: Holdings::Lacquer { admin },
            }))
        }
        ServerKind::Varnish | ServerKind::VarnishPolicy => {
            let Some(bin) = find_program("varnishd") else {
                return Ok(None);
            };
            let vcl = write_vcl(kind, origin, dir)?;
            // Runs fine as root with the default `-j unix` jail (it drops to
            // the varnish/vcache users).
            let workdir = dir.join("varnish");
            let mut cmd = Command::new(bin);
            cmd.arg("-F")
                .arg("-n")
                .arg(&workdir)
                .arg("-a")
                .arg(listen.to_string())
                .arg("-f")
                .arg(vcl)
                .arg("-s")
                .arg(format!("malloc,{storage_mib}m"));
            Ok(Some(ServerSpec {
                cmd,
                holdings: Holdings::Varnish { workdir },
            }))
        }
        ServerKind::Nginx => {
            let Some(bin) = find_program("nginx") else {
                return Ok(None);
            };
            let conf = dir.join("nginx.conf");
            let config = nginx_config(listen, origin, dir, running_as_root(), storage_mib);
            fs::write(&conf, config).map_err(|e| format!("write {}: {e}", conf.display()))?;
            let mut prefix = dir.as_os_str().to_owned();
            prefix.push("/");
            let mut cmd = Command::new(bin);
            cmd.arg("-p").arg(prefix).arg("-c").arg(conf);
            Ok(Some(ServerSpec {
                cmd,
                holdings: Holdings::Nginx {
                    cache_dir: dir.join(NGINX_CACHE_DIR),
                },
            }))
        }
    }
}

/// The realistic policy the `*-policy` servers run; its backend is on port 8080
/// until [`production_vcl`] points it at the bench origin.
const PRODUCTION_VCL: &str = include_str!("../../../vcl-lite/benches/production.vcl");

/// Writes the VCL `kind` runs into `dir`; its path.
fn write_vcl(kind: ServerKind, origin: SocketAddr, dir: &Path) -> Result<PathBuf, String> {
    let text = match kind {
        ServerKind::LacquerPolicy | ServerKind::VarnishPolicy => production_vcl(origin)?,
        _ => varnish_vcl(origin),
    };
    let vcl = dir.join("bench.vcl");
    fs::write(&vcl, text).map_err(|e| format!("write {}: {e}", vcl.display()))?;
    Ok(vcl)
}

/// `production.vcl` with its backend on the bench origin.
pub(crate) fn production_vcl(origin: SocketAddr) -> Result<String, String> {
    const HOST: &str = ".host = \"127.0.0.1\";";
    const PORT: &str = ".port = \"8080\";";
    if !PRODUCTION_VCL.contains(HOST) || !PRODUCTION_VCL.contains(PORT) {
        return Err(format!(
            "production.vcl no longer has `{HOST}` and `{PORT}` to point at the origin"
        ));
    }
    Ok(PRODUCTION_VCL
        .replacen(HOST, &format!(".host = \"{}\";", origin.ip()), 1)
        .replacen(PORT, &format!(".port = \"{}\";", origin.port()), 1))
}

/// What `varnishd -b ORIGIN` does (the builtin VCL), plus ESI for responses
/// that carry the `Surrogate-Control: content="ESI/1.0"` handshake, and
/// `do_gzip` for `text/plain` (the `gzip-16KiB` scenario's `/text/N`). Nothing
/// returns from the subroutine, so the builtin `vcl_backend_response` still
/// runs after it.
pub(crate) fn varnish_vcl(origin: SocketAddr) -> String {
    format!(
        "\
vcl 4.1;

backend origin {{
    .host = \"{ip}\";
    .port = \"{port}\";
}}

sub vcl_backend_response {{
    if (beresp.http.Surrogate-Control ~ \"ESI/1.0\") {{
        unset beresp.http.Surrogate-Control;
        set beresp.do_esi = true;
    }}
    if (beresp.http.Content-Type ~ \"^text/plain\" || bereq.url ~ \"[?]gzip$\") {{
        set beresp.do_gzip = true;
    }}
}}
",
        ip = origin.ip(),
        port = origin.port()
    )
}

/// nginx's cache directory, under the server's temp dir.
const NGINX_CACHE_DIR: &str = "cache";

/// nginx's shared memory zone for cache keys, in MiB. nginx's documentation
/// puts about 8,000 keys in 1 MiB, so 16 MiB hold ~128,000 keys; nginx stores
/// each object in whole filesystem blocks (4 KiB here), so even the
/// largest budget (256 MiB) holds at most 65,536 objects and `max_size`, not
/// the zone, decides what is evicted.
const NGINX_KEYS_ZONE_MIB: u64 = 16;

/// Files nginx's cache manager may delete per pass (default 100, a pass
/// every 50 ms at most): at the default it deletes at most ~2,000 files a
/// second, while `zipf` stores ~10,000 a second, and its cache ran to four
/// times `max_size`.
const NGINX_MANAGER_FILES: u64 = 10_000;

/// nginx as a caching proxy with a cache of `storage_mib` MiB: honours origin
/// Cache-Control (no `proxy_cache_valid`), keeps upstream connections alive,
/// does not cap client keep-alive at nginx's default 1000 requests per
/// connection, and gzips `text/plain` for clients that accept it (`gzip on`).
pub(crate) fn nginx_config(
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
    root: bool,
    storage_mib: u64,
) -> String {
    let d = dir.display();
    // As root, workers would run as `nobody` and could not write the cache dir.
    let user = if root { "user root;\n" } else { "" };
    format!(
        "\
daemon off;
master_process on;
worker_processes 2;
{user}pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    # gzip-16KiB: compressed at every response (nginx caches what the
    # origin sent); level 6 as lacquer's and Varnish's gzip.
    gzip on;
    gzip_types text/plain;
    gzip_comp_level 6;
    gzip_proxied any;
    gzip_vary on;

    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;

    proxy_cache_path {d}/{NGINX_CACHE_DIR} levels=1:2 keys_zone=bench:{NGINX_KEYS_ZONE_MIB}m max_size={storage_mib}m manager_files={NGINX_MANAGER_FILES} inactive=1h use_temp_path=off;

    upstream origin {{
        server {origin};
        keepalive 64;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache bench;
            # range-1MiB: ranges of cached answers even though the origin
            # does not say Accept-Ranges (lacquer and Varnish serve them).
            proxy_force_ranges on;
        }}
    }}
}}
"
    )
}

/// HAProxy in front of `nodes`, hashing the URI on a consistent-hash ring as a
/// cache cluster would. The one-node and two-node runs use this same config,
/// only the `server` lines differ.
pub(crate) fn haproxy_config(bind: SocketAddr, nodes: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "\
global
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    maxconn 4096

frontend cache
    bind {bind}
    default_backend lacquer

backend lacquer
    balance uri
    hash-type consistent
"
    );
    for (i, node) in nodes.iter().enumerate() {
        cfg.push_str(&format!("    server node{} {node}\n", i + 1));
    }
    cfg
}

pub(crate) fn start_haproxy(
    bin: &Path,
    bind: SocketAddr,
    nodes: &[SocketAddr],
) -> Result<RunningServer, String> {
    let dir = TempDir::new("haproxy").map_err(|e| format!("create temp dir: {e}"))?;
    let cfg = dir.0.join("haproxy.cfg");
    fs::write(&cfg, haproxy_config(bind, nodes))
        .map_err(|e| format!("write {}: {e}", cfg.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&cfg).arg("-db");
    eprintln!(
        "[scale-out] haproxy on {bind} -> {} lacquer node{}: {}",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        describe(&cmd)
    );
    let mut haproxy = RunningServer::spawn(cmd, bind, dir).map_err(|e| format!("haproxy: {e}"))?;
    haproxy.wait_ready().map_err(|e| format!("haproxy: {e}"))?;
    Ok(haproxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn lacquer_gets_the_budget() {
        let cmd = lacquer_command(Path::new("lacquer"), addr(1), addr(2), addr(3), 100);
        let a = args(&cmd);
        let at = a.iter().position(|x| x == "--storage").unwrap();
        assert_eq!(a[at + 1], "100MiB");
        assert_eq!(a[..3], ["run", "-a", "127.0.0.1:1"]);
    }

    #[test]
    fn varnish_and_lacquer_specs_get_the_budget() {
        let dir = crate::process::TempDir::new("proxies-test").unwrap();
        let spec = server_command(
            ServerKind::Lacquer,
            Path::new("lacquer"),
            addr(1),
            addr(2),
            &dir.0,
            100,
        )
        .unwrap()
        .unwrap();
        assert!(args(&spec.cmd).contains(&"100MiB".to_owned()));
        let Holdings::Lacquer { admin } = spec.holdings else {
            panic!("lacquer's holdings come from its admin listener");
        };
        assert!(args(&spec.cmd).contains(&admin.to_string()));
        // Varnish only where it is installed.
        if let Some(spec) = server_command(
            ServerKind::Varnish,
            Path::new("lacquer"),
            addr(1),
            addr(2),
            &dir.0,
            100,
        )
        .unwrap()
        {
            let a = args(&spec.cmd);
            let at = a.iter().position(|x| x == "-s").unwrap();
            assert_eq!(a[at + 1], "malloc,100m");
        }
    }

    #[test]
    fn nginx_config_gets_the_budget() {
        let conf = nginx_config(addr(1), addr(2), Path::new("/t"), false, 100);
        assert!(
            conf.contains(
                "proxy_cache_path /t/cache levels=1:2 keys_zone=bench:16m max_size=100m manager_files=10000 "
            ),
            "{conf}"
        );
        assert!(!conf.contains("user root;"));
        let conf = nginx_config(addr(1), addr(2), Path::new("/t"), true, STORAGE_MIB);
        assert!(conf.contains("max_size=256m") && conf.contains("user root;\n"));
    }
}
