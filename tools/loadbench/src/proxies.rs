//! Command lines and configuration of the proxies: lacquer, Varnish, nginx, HAProxy.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{describe, find_program, free_port, running_as_root, RunningServer, TempDir};

use crate::scenarios::ServerKind;

/// Storage budget given to every proxy under test, in MiB.
pub(crate) const STORAGE_MIB: u64 = 256;

/// The lacquer command line. This is the one place to adjust if the CLI changes.
/// The admin listener gets a free port too (its default, 6082, would clash
/// between the two nodes of `scale-out`).
pub(crate) fn lacquer_command(
    bin: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    admin: SocketAddr,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("-a")
        .arg(listen.to_string())
        .arg("-b")
        .arg(origin.to_string())
        .arg("--storage")
        .arg(format!("{STORAGE_MIB}MiB"))
        .arg("-T")
        .arg(admin.to_string());
    cmd
}

/// Builds the command for `kind`, or `Ok(None)` if its binary isn't installed.
pub(crate) fn server_command(
    kind: ServerKind,
    lacquer_bin: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Option<Command>, String> {
    match kind {
        ServerKind::Lacquer => Ok(Some(lacquer_command(
            lacquer_bin,
            listen,
            origin,
            free_port()?,
        ))),
        ServerKind::LacquerBuiltin | ServerKind::LacquerPolicy => {
            let vcl = write_vcl(kind, origin, dir)?;
            // The policy's backend replaces `-b`.
            let mut cmd = lacquer_command(lacquer_bin, listen, origin, free_port()?);
            cmd.arg("-f").arg(vcl);
            Ok(Some(cmd))
        }
        ServerKind::Varnish | ServerKind::VarnishPolicy => {
            let Some(bin) = find_program("varnishd") else {
                return Ok(None);
            };
            let vcl = write_vcl(kind, origin, dir)?;
            // Runs fine as root with the default `-j unix` jail (it drops to
            // the varnish/vcache users).
            let mut cmd = Command::new(bin);
            cmd.arg("-F")
                .arg("-n")
                .arg(dir.join("varnish"))
                .arg("-a")
                .arg(listen.to_string())
                .arg("-f")
                .arg(vcl)
                .arg("-s")
                .arg(format!("malloc,{STORAGE_MIB}m"));
            Ok(Some(cmd))
        }
        ServerKind::Nginx => {
            let Some(bin) = find_program("nginx") else {
                return Ok(None);
            };
            let conf = dir.join("nginx.conf");
            fs::write(&conf, nginx_config(listen, origin, dir, running_as_root()))
                .map_err(|e| format!("write {}: {e}", conf.display()))?;
            let mut prefix = dir.as_os_str().to_owned();
            prefix.push("/");
            let mut cmd = Command::new(bin);
            cmd.arg("-p").arg(prefix).arg("-c").arg(conf);
            Ok(Some(cmd))
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

/// nginx as a caching proxy: honours origin Cache-Control (no
/// `proxy_cache_valid`), keeps upstream connections alive, does not cap
/// client keep-alive at nginx's default 1000 requests per connection, and
/// gzips `text/plain` for clients that accept it (`gzip on`).
pub(crate) fn nginx_config(
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
    root: bool,
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

    proxy_cache_path {d}/cache levels=1:2 keys_zone=bench:16m max_size={STORAGE_MIB}m inactive=1h use_temp_path=off;

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
