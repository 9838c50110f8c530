//! PCRE constructs in running policies: look-around, back-references,
//! possessive repetition, and the backtracking bound.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use vcl_lite::{compile, Action, Context, Header, Sub, Value, Var};

/// Request headers and URL in maps; nothing else.
#[derive(Default)]
struct Req {
    vars: HashMap<Var, String>,
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Req {
        self.vars
            .insert(Var::ReqHttp(Header::new(name)), value.to_string());
        self
    }
    fn url(mut self, url: &str) -> Req {
        self.vars.insert(Var::ReqUrl, url.to_string());
        self
    }
    fn get_header(&self, name: &str) -> Option<&str> {
        self.vars
            .get(&Var::ReqHttp(Header::new(name)))
            .map(String::as_str)
    }
}

impl Context for Req {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        self.vars.get(var).map(|s| Value::Str(s.as_str().into()))
    }
    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        self.vars.insert(var.clone(), value.to_string());
        Ok(())
    }
    fn unset(&mut self, var: &Var) {
        self.vars.remove(var);
    }
    fn client_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    }
    fn hash_data(&mut self, _: &str) {}
    fn synthetic(&mut self, _: &str) {}
}

fn recv(policy: &str, req: &mut Req) -> Option<Action> {
    let program = compile(policy, "t.vcl").unwrap_or_else(|e| panic!("{e}"));
    program.run(Sub::Recv, req).expect("runs")
}

#[test]
fn the_wordpress_example_keeps_only_the_test_cookie_and_foreign_cookies() {
    let policy = include_str!("../examples/wordpress.vcl");
    let mut req = Req::default().url("/blog/").header(
        "Cookie",
        "wordpress_test_cookie=WP; wordpress_sec_1=a; wp-postpass_9=x; theme=dark",
    );
    assert_eq!(recv(policy, &mut req), None);
    assert_eq!(
        req.get_header("Cookie"),
        Some("wordpress_test_cookie=WP; theme=dark")
    );

    let mut req = Req::default()
        .url("/")
        .header("Cookie", "wordpress_abc=1; wp-postpass_2=2");
    assert_eq!(recv(policy, &mut req), None);
    assert_eq!(req.get_header("Cookie"), None);

    let mut req = Req::default()
        .url("/")
        .header("Cookie", "wordpress_logged_in_1=me");
    assert_eq!(recv(policy, &mut req), Some(Action::Pass));
}

#[test]
fn back_references_look_behind_and_possessive_repetition() {
    let policy = r#"
sub vcl_recv {
    if (req.url ~ "/(\w+)/\1(/|$)") {
        set req.http.X-Repeated = "yes";
    }
    set req.http.X-Path = regsuball(req.url, "(?<=/)v\d+/", "");
    if (req.url ~ "^/a++a") {
        return (pass);
    }
    set req.http.X-Twice = regsub(req.url, "^/(\w+)(?=/)", "/\1\1");
}"#;
    let mut req = Req::default().url("/api/api/v2/users");
    assert_eq!(recv(policy, &mut req), None);
    assert_eq!(req.get_header("X-Repeated"), Some("yes"));
    assert_eq!(req.get_header("X-Path"), Some("/api/api/users"));
    assert_eq!(req.get_header("X-Twice"), Some("/apiapi/api/v2/users"));

    let mut req = Req::default().url("/api/v1/users");
    assert_eq!(recv(policy, &mut req), None);
    assert_eq!(req.get_header("X-Repeated"), None);
    assert_eq!(req.get_header("X-Path"), Some("/api/users"));

    // `a++` takes every `a`, leaving none for the last `a`: no match.
    let mut req = Req::default().url("/aaaa");
    assert_eq!(recv(policy, &mut req), None);
}

#[test]
fn a_runaway_pattern_is_no_match_and_does_not_hang() {
    let policy = r#"
sub vcl_recv {
    if (req.url ~ "^/(?:(a|aa)+\1c|a+b)") {
        return (pass);
    }
    set req.http.X-Rewritten = regsuball(req.url, "(?:(a|aa)+\1c|a+b)", "x");
}"#;
    let start = std::time::Instant::now();
    let mut short = Req::default().url("/aab");
    assert_eq!(recv(policy, &mut short), Some(Action::Pass));
    let url = format!("/{}b", "a".repeat(40));
    let mut long = Req::default().url(&url);
    assert_eq!(recv(policy, &mut long), None);
    // regsuball gave up too: the subject is left as it was.
    assert_eq!(long.get_header("X-Rewritten"), Some(url.as_str()));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}
