//! `vcl_lite::compile` on arbitrary UTF-8. Errors are formatted (the
//! snippet with its caret); a policy that compiles has every built-in
//! subroutine run against dummy contexts that accept every `set`: one whose
//! variables all have plausible values, one with extreme values, and one
//! where nothing is set. ACL host names are answered by a stand-in
//! resolver (no DNS).
#![no_main]

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vcl_lite::{compile, with_resolver, Context, Sub, Type, Value, Var};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plausible,
    Extreme,
    Unset,
}

struct Ctx {
    mode: Mode,
    vars: HashMap<Var, Value<'static>>,
    hashed: usize,
    body: usize,
    /// vmod cookie's jar and vmod var's variables.
    state: vcl_lite::TaskState,
}

impl Ctx {
    fn new(mode: Mode) -> Ctx {
        Ctx {
            mode,
            vars: HashMap::new(),
            hashed: 0,
            state: vcl_lite::TaskState::default(),
            body: 0,
        }
    }
}

/// The type of the variables this dummy host knows; everything else is
/// taken as a STRING (Var is non-exhaustive).
fn type_of(var: &Var) -> Type {
    match var {
        Var::ReqRestarts
        | Var::BereqRetries
        | Var::BerespStatus
        | Var::ObjHits
        | Var::ObjStatus
        | Var::RespStatus => Type::Int,
        Var::ReqTtl
        | Var::ReqGrace
        | Var::BerespTtl
        | Var::BerespGrace
        | Var::BerespKeep
        | Var::BerespAge
        | Var::ObjAge
        | Var::ObjTtl
        | Var::ObjGrace
        | Var::ObjKeep => Type::Duration,
        Var::ReqHashAlwaysMiss
        | Var::BereqUncacheable
        | Var::BerespUncacheable
        | Var::BerespDoEsi
        | Var::BerespWas304
        | Var::ObjUncacheable => Type::Bool,
        Var::ClientIp => Type::Ip,
        Var::ReqBackendHint | Var::BereqBackend | Var::BerespBackend => Type::Backend,
        _ => Type::String,
    }
}

fn made_up(var: &Var, mode: Mode) -> Option<Value<'static>> {
    let extreme = mode == Mode::Extreme;
    Some(match type_of(var) {
        Type::Int if extreme => Value::Int(i64::MIN),
        Type::Int => Value::Int(200),
        Type::Duration if extreme => Value::Duration(f64::NAN),
        Type::Duration => Value::Duration(120.0),
        Type::Bool => Value::Bool(!extreme),
        Type::Ip if extreme => Value::Ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        Type::Ip => Value::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        Type::Real if extreme => Value::Real(f64::INFINITY),
        Type::Real => Value::Real(1.5),
        Type::Time if extreme => Value::Time(f64::NAN),
        Type::Time => Value::Time(1.7e9),
        Type::Bytes if extreme => Value::Bytes(i64::MAX),
        Type::Bytes => Value::Bytes(1024),
        Type::Backend if extreme => Value::Str(Cow::Borrowed("")),
        Type::Backend => Value::Str(Cow::Borrowed("default")),
        Type::String if extreme => Value::Str(Cow::Borrowed(
            "\u{0}\u{1F600}\u{e9}  -9223372036854775808 1e999s",
        )),
        Type::String => match var {
            Var::ReqUrl | Var::BereqUrl => {
                Value::Str(Cow::Borrowed("/shop/item.php?id=42&utm_source=x"))
            }
            Var::ReqMethod | Var::BereqMethod => Value::Str(Cow::Borrowed("GET")),
            _ => Value::Str(Cow::Borrowed("max-age=60, 10s, 42")),
        },
    })
}

impl Context for Ctx {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        if let Some(v) = self.vars.get(var) {
            return Some(match v {
                Value::Str(s) => Value::Str(Cow::Borrowed(s)),
                other => other.clone(),
            });
        }
        if self.mode == Mode::Unset {
            return None;
        }
        made_up(var, self.mode)
    }
    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        self.vars.insert(var.clone(), value.into_owned());
        Ok(())
    }
    fn unset(&mut self, var: &Var) {
        self.vars.remove(var);
    }
    fn client_ip(&self) -> IpAddr {
        match self.mode {
            Mode::Extreme => IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 1)),
            _ => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        }
    }
    fn hash_data(&mut self, data: &str) {
        self.hashed += data.len();
    }
    fn synthetic(&mut self, body: &str) {
        self.body += body.len();
    }
    fn task_state(&self) -> Option<&vcl_lite::TaskState> {
        Some(&self.state)
    }
    fn task_state_mut(&mut self) -> Option<&mut vcl_lite::TaskState> {
        Some(&mut self.state)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // ACL host names: a stand-in resolver, no DNS queries while fuzzing.
    let resolved = |name: &str| match name.len() % 3 {
        0 => Ok(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]),
        1 => Ok(vec![
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        ]),
        _ => Err(format!("{name}: not found")),
    };
    let program = match with_resolver(resolved, || compile(source, "fuzz.vcl")) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            assert!(e.line() >= 1 && e.column() >= 1);
            return;
        }
    };
    for mode in [Mode::Plausible, Mode::Extreme, Mode::Unset] {
        for sub in Sub::ALL {
            let mut ctx = Ctx::new(mode);
            match program.run(sub, &mut ctx) {
                Ok(_) => {}
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
