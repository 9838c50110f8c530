//! Running the functions of the built-in vmods other than std (see
//! `crate::vmods`): those with a result here, the statements in
//! [`Program::vmod_effect`].

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use super::{fail, Context, Program, Value};
use crate::funcs::Func;
use crate::ir::{Arg, Call};
use crate::pattern::Pattern;
use crate::vars::{Type, Var};
use crate::vmods::{header_matches, ProxyField, SoftPurge, Stored};

fn regex_arg(c: &Call, i: usize) -> Option<&Pattern> {
    match c.args.get(i)? {
        Arg::Regex(re) => Some(re),
        _ => None,
    }
}

fn header_arg(c: &Call, i: usize) -> Option<&Var> {
    match c.args.get(i)? {
        Arg::Header(var) => Some(var),
        _ => None,
    }
}

/// What an unset variable of vmod var reads as (STRING: unset).
fn zero(ty: Type) -> Option<Value<'static>> {
    Some(match ty {
        Type::Int => Value::Int(0),
        Type::Real => Value::Real(0.0),
        Type::Duration => Value::Duration(0.0),
        Type::Ip => Value::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Type::Bool => Value::Bool(false),
        Type::Time => Value::Time(0.0),
        Type::Bytes => Value::Bytes(0),
        Type::String | Type::Backend => return None,
    })
}

impl Program {
    /// A DURATION argument (0 when absent).
    fn arg_dur(&self, c: &Call, i: usize, ctx: &dyn Context) -> f64 {
        match c.args.get(i) {
            Some(Arg::Val(e, _)) => self.dur(e, ctx),
            _ => 0.0,
        }
    }

    /// A vmod function with a result.
    pub(super) fn vmod_call<'a>(&'a self, c: &'a Call, ctx: &'a dyn Context) -> Option<Value<'a>> {
        let state = ctx.task_state();
        Some(match c.func {
            Func::CookieGet => {
                let name = self.arg_str(c, 0, ctx)?;
                Value::Str(Cow::Borrowed(state?.cookie_get(&name)?))
            }
            Func::CookieGetRe => Value::Str(Cow::Borrowed(state?.cookie_get_re(regex_arg(c, 0)?)?)),
            Func::CookieIsset => {
                let name = self.arg_str(c, 0, ctx).unwrap_or_default();
                Value::Bool(state.is_some_and(|s| s.cookie_get(&name).is_some()))
            }
            Func::CookieGetString => Value::Str(Cow::Owned(
                state.map(|s| s.cookie_string()).unwrap_or_default(),
            )),
            Func::CookieFormatRfc1123 => {
                let now = match c.args.first() {
                    Some(Arg::Val(e, _)) => self.time(e, ctx),
                    _ => 0.0,
                };
                let when = now + self.arg_dur(c, 1, ctx);
                Value::Str(Cow::Owned(crate::stdlib::http_date(when)))
            }
            Func::HeaderGet => {
                let re = regex_arg(c, 1)?;
                let found = ctx
                    .header_values(header_arg(c, 0)?)
                    .into_iter()
                    .find(|v| header_matches(re, v))?;
                Value::Str(Cow::Owned(found))
            }
            Func::VarGet(ty) => {
                let key = self.arg_str(c, 0, ctx)?;
                match (state.and_then(|s| s.var_get(&key)), ty) {
                    (Some(Stored::Str(s)), Type::String) => Value::Str(Cow::Borrowed(s)),
                    (Some(Stored::Int(i)), Type::Int) => Value::Int(*i),
                    (Some(Stored::Real(r)), Type::Real) => Value::Real(*r),
                    (Some(Stored::Duration(d)), Type::Duration) => Value::Duration(*d),
                    (Some(Stored::Ip(ip)), Type::Ip) => Value::Ip(*ip),
                    _ => zero(ty)?,
                }
            }
            Func::VarGlobalGet => {
                let key = self.arg_str(c, 0, ctx)?;
                Value::Str(Cow::Owned(self.globals.get(&key)?))
            }
            Func::XkeyPurge | Func::XkeySoftpurge => {
                let keys = self.arg_str(c, 0, ctx).unwrap_or_default();
                Value::Int(ctx.xkey_purge(&keys, c.func == Func::XkeySoftpurge))
            }
            Func::PurgeHard | Func::PurgeSoft => {
                let soft = (c.func == Func::PurgeSoft).then(|| {
                    let optional = |d: f64| (d >= 0.0).then_some(d);
                    SoftPurge {
                        ttl: self.arg_dur(c, 0, ctx).max(0.0),
                        grace: optional(self.arg_dur(c, 1, ctx)),
                        keep: optional(self.arg_dur(c, 2, ctx)),
                    }
                });
                match ctx.purge(soft) {
                    Ok(n) => Value::Int(n),
                    Err(message) => {
                        fail(|| message);
                        return None;
                    }
                }
            }
            Func::Proxy(field) => match (ctx.proxy(field), field) {
                (Some(v), _) => v,
                (None, ProxyField::IsSsl)
                | (None, ProxyField::ClientHasCertConn)
                | (None, ProxyField::ClientHasCertSess) => Value::Bool(false),
                (None, ProxyField::SslVerifyResult) => Value::Int(0),
                (None, _) => return None,
            },
            _ => return None,
        })
    }

    /// A vmod function called as a statement.
    pub(super) fn vmod_effect(&self, c: &Call, ctx: &mut dyn Context) -> Result<(), String> {
        let text = |i: usize, ctx: &dyn Context| {
            self.arg_str(c, i, ctx)
                .map(Cow::into_owned)
                .unwrap_or_default()
        };
        match c.func {
            Func::HeaderAppend | Func::HeaderCopy | Func::HeaderRemove => {
                return self.header_effect(c, ctx)
            }
            Func::VarGlobalSet => {
                let (key, value) = (text(0, &*ctx), text(1, &*ctx));
                self.globals.set(&key, value);
                return Ok(());
            }
            _ => {}
        }
        // The task-state functions: read the arguments, then change it.
        match c.func {
            Func::CookieParse | Func::CookieDelete | Func::CookieFilter | Func::CookieKeep => {
                let arg = text(0, &*ctx);
                let Some(state) = ctx.task_state_mut() else {
                    return Ok(());
                };
                match c.func {
                    Func::CookieParse => state.cookie_parse(&arg),
                    Func::CookieDelete => state.cookie_delete(&arg),
                    Func::CookieFilter => state.cookie_filter(&arg, false),
                    _ => state.cookie_filter(&arg, true),
                }
            }
            Func::CookieSet => {
                let (name, value) = (text(0, &*ctx), text(1, &*ctx));
                if let Some(state) = ctx.task_state_mut() {
                    state.cookie_set(&name, &value);
                }
            }
            Func::CookieClean => {
                if let Some(state) = ctx.task_state_mut() {
                    state.cookie_clean();
                }
            }
            Func::CookieFilterRe | Func::CookieKeepRe => {
                let (Some(re), Some(state)) = (regex_arg(c, 0), ctx.task_state_mut()) else {
                    return Ok(());
                };
                state.cookie_filter_re(re, c.func == Func::CookieKeepRe);
            }
            Func::VarSet(ty) => {
                let key = text(0, &*ctx);
                let Some(Arg::Val(e, _)) = c.args.get(1) else {
                    return Ok(());
                };
                let value = match ty {
                    Type::Int => Stored::Int(self.int(e, &*ctx)),
                    Type::Real => Stored::Real(self.real(e, &*ctx)),
                    Type::Duration => Stored::Duration(self.dur(e, &*ctx)),
                    Type::Ip => Stored::Ip(self.ip(e, &*ctx)),
                    _ => Stored::Str(text(1, &*ctx)),
                };
                if let Some(state) = ctx.task_state_mut() {
                    state.var_set(&key, value);
                }
            }
            Func::VarClear => {
                if let Some(state) = ctx.task_state_mut() {
                    state.var_clear();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `header.append`, `header.copy`, `header.remove`.
    fn header_effect(&self, c: &Call, ctx: &mut dyn Context) -> Result<(), String> {
        let Some(first) = header_arg(c, 0) else {
            return Ok(());
        };
        match c.func {
            Func::HeaderAppend => {
                let content = self
                    .arg_str(c, 1, &*ctx)
                    .map(Cow::into_owned)
                    .unwrap_or_default();
                let mut values = ctx.header_values(first);
                values.push(content);
                ctx.set_header_values(first, values)
            }
            Func::HeaderCopy => {
                let Some(dst) = header_arg(c, 1) else {
                    return Ok(());
                };
                let copied = ctx.header_values(first);
                if copied.is_empty() {
                    return Ok(());
                }
                let mut values = ctx.header_values(dst);
                values.extend(copied);
                ctx.set_header_values(dst, values)
            }
            _ => {
                let Some(re) = regex_arg(c, 1) else {
                    return Ok(());
                };
                let values = ctx.header_values(first);
                let before = values.len();
                let kept: Vec<String> = values
                    .into_iter()
                    .filter(|v| !header_matches(re, v))
                    .collect();
                if kept.len() == before {
                    return Ok(());
                }
                ctx.set_header_values(first, kept)
            }
        }
    }
}
