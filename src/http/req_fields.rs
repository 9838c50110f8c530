//! A request's header fields: an `http::HeaderMap`, a summary of which
//! names it holds, and the changes a policy made that are not in the map
//! yet.
//!
//! **The summary** is a 64-bit filter: bit [`name_bit`] of each name
//! present. A clear bit means the name is absent; a set bit means it may be
//! present (the map answers). A policy asking for a field the request does
//! not have (`req.http.Cookie` on a request without cookies) is then
//! answered without hashing the name and probing the map (~110
//! instructions each; production.vcl asks for absent fields ~10 times per
//! hit). It is made on demand ([`ReqFields::summarise`]) and forgotten
//! whenever the map is handed out to be changed ([`ReqFields::map_mut`]).
//!
//! **The pending changes**: a policy's `set req.http.X-Device = "mobile"`
//! and `unset req.http.Cookie` are kept in a short list beside the map
//! instead of being made in it (an insert into a `HeaderMap` hashes the
//! name, probes, and grows the map: ~350 instructions, against ~50 to
//! note the change). Every read goes through [`FieldsRead`], which answers
//! from the list first, so no reader can see the map without the changes;
//! the list is folded into the map only where a whole map is needed
//! ([`ReqFields::map_mut`], [`ReqFields::into_map`]). A cache hit never
//! needs one: the changes are read where they are and dropped with the
//! request.
//!
//! Order of the fields, as a `HeaderMap` keeps it: a set of a name the
//! request has replaces its values where the first one was, a set of a
//! new name (or of one removed before) comes after the request's own
//! fields and the names set before it, and an unset takes the name out
//! without moving the others.

use http::header::{AsHeaderName, HeaderName, HeaderValue};
use http::HeaderMap;

/// A request's fields (see the module's documentation). Read through
/// [`FieldsRead`]; changed by the policy's [`ReqFields::insert_known`] /
/// [`ReqFields::remove_known`], or as a map through [`ReqFields::map_mut`].
#[derive(Debug, Clone, Default)]
pub struct ReqFields {
    map: HeaderMap,
    /// The filter of the map's names; `None` until summarised, and after
    /// the map was handed out to be changed.
    present: Option<u64>,
    /// The policy's changes not made in `map` yet: one entry per name, in
    /// the order the names were first changed.
    pending: Vec<Pending>,
    /// The [`name_bit`]s of `pending`'s names.
    pending_bits: u64,
}

/// A change not made in the map yet: `name` set to `value` alone, or
/// removed (`None`).
#[derive(Debug, Clone)]
struct Pending {
    /// The name's [`name_bit`]: most names are told apart by it alone.
    bit: u64,
    name: HeaderName,
    value: Option<HeaderValue>,
    /// Set after being removed: the name comes after the request's own
    /// fields, as a map would put it, not where the map has it.
    moved: bool,
}

/// Names changed at most before the changes are made in the map (the
/// listing in [`ReqFields::iter`] marks them in a 64-bit set; a policy
/// changes a handful).
const MAX_PENDING: usize = 64;

/// The filter bit of a name: from its length and its last byte (names a
/// policy tests mostly differ in one or the other).
#[inline]
pub fn name_bit(name: &HeaderName) -> u64 {
    text_bit(name.as_str())
}

/// [`name_bit`] of a name given as text, in any case.
#[inline]
fn text_bit(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let last = bytes.last().map_or(0, u8::to_ascii_lowercase);
    1 << (((bytes.len() as u32).wrapping_mul(7) ^ u32::from(last)) % 64)
}

/// Reading fields by name: a `HeaderMap`, or a request's [`ReqFields`]
/// with the policy's changes. Functions that read a request's fields take
/// `&impl FieldsRead`, so they serve both without folding the changes in.
/// Names may be given as a `HeaderName` (or a reference to one) or as
/// text in any case, as `HeaderMap::get` takes them.
pub trait FieldsRead {
    /// The first value of `name`.
    fn get<K: AsHeaderName + AsRef<str>>(&self, name: K) -> Option<&HeaderValue>;
    /// Every value of `name`, in order.
    fn get_all<K: AsHeaderName + AsRef<str>>(&self, name: K) -> FieldValues<'_>;
    /// Whether there is a value of `name`.
    fn contains_key<K: AsHeaderName + AsRef<str>>(&self, name: K) -> bool {
        self.get(name).is_some()
    }
}

/// The values of one name ([`FieldsRead::get_all`]).
pub enum FieldValues<'a> {
    /// The values in a map.
    Map(http::header::ValueIter<'a, HeaderValue>),
    /// One value or none (a pending change).
    One(Option<&'a HeaderValue>),
    /// The values of two lists of fields (a stored object's, then its
    /// delivery's), then a map's.
    Listed(
        ListedValues<'a>,
        ListedValues<'a>,
        http::header::ValueIter<'a, HeaderValue>,
    ),
}

/// The values of one name in a list of fields, in order.
pub struct ListedValues<'a> {
    rest: &'a [(HeaderName, HeaderValue)],
    name: &'a str,
}

impl<'a> ListedValues<'a> {
    /// The values named `name` (any case) in `fields`, when `shown`
    /// holds for that name.
    pub fn of(
        fields: &'a [(HeaderName, HeaderValue)],
        name: &str,
        shown: impl Fn(&HeaderName) -> bool,
    ) -> ListedValues<'a> {
        match fields
            .iter()
            .position(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
        {
            Some(i) if shown(&fields[i].0) => ListedValues {
                rest: &fields[i..],
                name: fields[i].0.as_str(),
            },
            _ => ListedValues {
                rest: &[],
                name: "",
            },
        }
    }
}

impl<'a> Iterator for ListedValues<'a> {
    type Item = &'a HeaderValue;

    fn next(&mut self) -> Option<&'a HeaderValue> {
        while let Some(((n, v), rest)) = self.rest.split_first() {
            self.rest = rest;
            if n.as_str() == self.name {
                return Some(v);
            }
        }
        None
    }
}

impl<'a> Iterator for FieldValues<'a> {
    type Item = &'a HeaderValue;

    #[inline]
    fn next(&mut self) -> Option<&'a HeaderValue> {
        match self {
            FieldValues::Map(values) => values.next(),
            FieldValues::One(value) => value.take(),
            FieldValues::Listed(first, second, map) => first
                .next()
                .or_else(|| second.next())
                .or_else(|| map.next()),
        }
    }
}

impl FieldsRead for HeaderMap {
    #[inline]
    fn get<K: AsHeaderName + AsRef<str>>(&self, name: K) -> Option<&HeaderValue> {
        HeaderMap::get(self, name)
    }
    #[inline]
    fn get_all<K: AsHeaderName + AsRef<str>>(&self, name: K) -> FieldValues<'_> {
        FieldValues::Map(HeaderMap::get_all(self, name).into_iter())
    }
    #[inline]
    fn contains_key<K: AsHeaderName + AsRef<str>>(&self, name: K) -> bool {
        HeaderMap::contains_key(self, name)
    }
}

/// Names the filter rules out are answered without a look into the map
/// (most names asked on a request's way are absent: `Range`, the
/// conditionals, `Cookie`…; a map lookup hashes the name).
impl FieldsRead for ReqFields {
    #[inline]
    fn get<K: AsHeaderName + AsRef<str>>(&self, name: K) -> Option<&HeaderValue> {
        let bit = text_bit(name.as_ref());
        if let Some(p) = self.pending_of(name.as_ref(), bit) {
            return p.value.as_ref();
        }
        if self.absent(bit) {
            return None;
        }
        self.map.get(name)
    }
    #[inline]
    fn get_all<K: AsHeaderName + AsRef<str>>(&self, name: K) -> FieldValues<'_> {
        let bit = text_bit(name.as_ref());
        if let Some(p) = self.pending_of(name.as_ref(), bit) {
            return FieldValues::One(p.value.as_ref());
        }
        if self.absent(bit) {
            return FieldValues::One(None);
        }
        FieldValues::Map(self.map.get_all(name).into_iter())
    }
}

impl ReqFields {
    /// The fields of `map`, summarised, with no changes pending.
    pub fn new(map: HeaderMap) -> ReqFields {
        let mut fields = ReqFields {
            map,
            present: None,
            pending: Vec::new(),
            pending_bits: 0,
        };
        // A few instructions a name, against a hashed lookup for each name
        // asked and absent.
        fields.summarise();
        fields
    }

    /// Makes the filter if there is none (one pass over the map's names).
    pub fn summarise(&mut self) {
        if self.present.is_none() {
            self.present = Some(self.map.keys().fold(0, |bits, n| bits | name_bit(n)));
        }
    }

    /// Whether the map certainly lacks the name whose [`name_bit`] is
    /// `bit` (the filter says so); false when not summarised.
    #[inline]
    fn absent(&self, bit: u64) -> bool {
        self.present.is_some_and(|bits| bits & bit == 0)
    }

    /// The pending change of `name` (text in any case), whose
    /// [`text_bit`] is `bit`, if any.
    #[inline]
    fn pending_of(&self, name: &str, bit: u64) -> Option<&Pending> {
        if self.pending_bits & bit == 0 {
            return None;
        }
        self.pending
            .iter()
            .find(|p| p.bit == bit && p.name.as_str().eq_ignore_ascii_case(name))
    }

    /// Where in the list the change of `name` (whose [`name_bit`] is
    /// `bit`) is, if it has one.
    #[inline]
    fn position(&self, name: &HeaderName, bit: u64) -> Option<usize> {
        if self.pending_bits & bit == 0 {
            return None;
        }
        self.pending
            .iter()
            .position(|p| p.bit == bit && p.name == *name)
    }

    /// The first value of `name`, whose [`name_bit`] is `bit` (a policy's
    /// name, whose bit is kept with it): absent names are told by the
    /// filter.
    #[inline]
    pub fn first(&self, name: &HeaderName, bit: u64) -> Option<&HeaderValue> {
        debug_assert_eq!(bit, name_bit(name));
        if let Some(i) = self.position(name, bit) {
            return self.pending[i].value.as_ref();
        }
        if self.absent(bit) {
            return None;
        }
        self.map.get(name)
    }

    /// Sets `name` (whose [`name_bit`] is `bit`) to `value` alone, as a
    /// pending change.
    pub fn insert_known(&mut self, name: HeaderName, value: HeaderValue, bit: u64) {
        debug_assert_eq!(bit, name_bit(&name));
        self.note(name, bit, Some(value));
    }

    /// Removes every value of `name` (whose [`name_bit`] is `bit`), as a
    /// pending change unless the name is certainly absent.
    pub fn remove_known(&mut self, name: &HeaderName, bit: u64) {
        debug_assert_eq!(bit, name_bit(name));
        if let Some(i) = self.position(name, bit) {
            self.pending[i].value = None;
        } else if !self.absent(bit) {
            self.note(name.clone(), bit, None);
        }
    }

    fn note(&mut self, name: HeaderName, bit: u64, value: Option<HeaderValue>) {
        if let Some(i) = self.position(&name, bit) {
            if self.pending[i].value.is_none() && value.is_some() {
                // Set again after a removal: last in the order.
                let mut p = self.pending.remove(i);
                p.value = value;
                p.moved = true;
                self.pending.push(p);
            } else {
                self.pending[i].value = value;
            }
            return;
        }
        if self.pending.len() == MAX_PENDING {
            self.fold_pending();
        }
        if self.pending.capacity() == 0 {
            // One allocation for what a policy changes (a handful).
            self.pending.reserve_exact(8);
        }
        self.pending_bits |= bit;
        self.pending.push(Pending {
            bit,
            name,
            value,
            moved: false,
        });
    }

    /// [`crate::http::coding::normal_accept_encoding`] on these fields, as a
    /// pending change (and none when the value is already the normal one:
    /// a policy that set `Accept-Encoding: gzip` has done the work).
    pub fn normalise_accept_encoding(&mut self) {
        let ae = http::header::ACCEPT_ENCODING;
        if !self.contains_key(&ae) {
            // None: nothing to normalise.
            return;
        }
        let bit = name_bit(&ae);
        match crate::http::coding::normal_accept_encoding(self) {
            None => self.remove_known(&ae, bit),
            Some(v) => {
                let mut values = self.get_all(&ae);
                let same = values.next() == Some(&v) && values.next().is_none();
                if !same {
                    self.insert_known(ae, v, bit);
                }
            }
        }
    }

    /// About how many fields there are (for sizing a copy): the map's
    /// values and the pending changes.
    pub fn size_hint(&self) -> usize {
        self.map.len() + self.pending.len()
    }

    /// Every field, pending changes made, in the order a map holding them
    /// would list them (see the module's documentation).
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> + '_ {
        let mut replaced_seen: u64 = 0;
        let from_map = self.map.iter().filter_map(move |(name, value)| {
            let Some(i) = self.position(name, name_bit(name)) else {
                return Some((name, value));
            };
            if self.pending[i].moved {
                return None;
            }
            // The pending value stands where the name's first value was;
            // the name's other values go.
            if replaced_seen & (1 << i) != 0 {
                return None;
            }
            replaced_seen |= 1 << i;
            self.pending[i]
                .value
                .as_ref()
                .map(|v| (&self.pending[i].name, v))
        });
        let added = self.pending.iter().filter_map(move |p| {
            if !p.moved && self.map.contains_key(&p.name) {
                return None;
            }
            p.value.as_ref().map(|v| (&p.name, v))
        });
        from_map.chain(added)
    }

    /// The map to change as a map, pending changes made in it first; the
    /// filter is forgotten (made again when next asked for).
    pub fn map_mut(&mut self) -> &mut HeaderMap {
        self.fold_pending();
        self.present = None;
        &mut self.map
    }

    /// The fields as a map, pending changes made.
    pub fn into_map(mut self) -> HeaderMap {
        self.fold_pending();
        self.map
    }

    /// A copy of the fields as a map, pending changes made.
    pub fn to_map(&self) -> HeaderMap {
        if self.pending.is_empty() {
            return self.map.clone();
        }
        let mut map = HeaderMap::with_capacity(self.map.len() + self.pending.len());
        for (name, value) in self.iter() {
            map.append(name.clone(), value.clone());
        }
        map
    }

    /// Makes the pending changes in the map, in the order [`Self::iter`]
    /// lists the fields.
    fn fold_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let moves_a_field = self
            .pending
            .iter()
            .any(|p| (p.value.is_none() || p.moved) && self.map.contains_key(&p.name));
        if moves_a_field {
            // `HeaderMap::remove` moves the last name into the gap, and an
            // insert keeps a name where it was: build the map again
            // instead, so that the order stays as listed.
            self.map = self.to_map();
        } else {
            for p in self.pending.drain(..) {
                if let Some(value) = p.value {
                    self.map.insert(p.name, value);
                }
            }
        }
        if let Some(bits) = &mut self.present {
            *bits |= self.pending_bits;
        }
        self.pending.clear();
        self.pending_bits = 0;
    }
}

impl From<HeaderMap> for ReqFields {
    fn from(map: HeaderMap) -> ReqFields {
        ReqFields::new(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT_ENCODING, COOKIE, HOST, USER_AGENT};

    fn fields(pairs: &[(&str, &str)]) -> ReqFields {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        ReqFields::new(map)
    }

    fn name(n: &str) -> HeaderName {
        HeaderName::from_bytes(n.as_bytes()).unwrap()
    }

    fn set(f: &mut ReqFields, n: &str, v: &str) {
        let n = name(n);
        let bit = name_bit(&n);
        f.insert_known(n, HeaderValue::from_str(v).unwrap(), bit);
    }

    fn unset(f: &mut ReqFields, n: &str) {
        let n = name(n);
        f.remove_known(&n, name_bit(&n));
    }

    fn listed(f: &ReqFields) -> Vec<(String, String)> {
        f.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn map_listed(m: &HeaderMap) -> Vec<(String, String)> {
        m.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn a_summary_never_hides_a_field() {
        // Standard and custom names, present one at a time among others:
        // the filter must let each through.
        let names: Vec<HeaderName> = ["x-device", "x-lang", "surrogate-capability", "x-a", "x-b"]
            .iter()
            .map(|n| HeaderName::from_static(n))
            .chain([HOST, COOKIE, USER_AGENT, http::header::ACCEPT_LANGUAGE])
            .collect();
        for name in &names {
            let mut f = fields(&[("accept", "*/*"), ("x-forwarded-for", "1.2.3.4")]);
            f.map_mut()
                .append(name.clone(), HeaderValue::from_static("v"));
            f.summarise();
            assert_eq!(
                f.first(name, name_bit(name)).map(|v| v.as_bytes()),
                Some(&b"v"[..]),
                "{name}"
            );
            assert!(!f.absent(name_bit(name)), "{name}");
            let upper = name.as_str().to_ascii_uppercase();
            assert_eq!(f.get(upper.as_str()).map(|v| v.as_bytes()), Some(&b"v"[..]));
            assert_eq!(f.get_all(name).count(), 1, "{name}");
        }
    }

    #[test]
    fn absent_fields_are_told_without_the_map() {
        let mut f = fields(&[("host", "h")]);
        // Summarised when made.
        assert!(f.absent(name_bit(&COOKIE)));
        assert_eq!(f.get(&COOKIE), None);
        assert_eq!(f.get("COOKIE"), None);
        assert_eq!(f.get_all(&COOKIE).count(), 0);
        assert_eq!(f.get("Host").map(|v| v.as_bytes()), Some(&b"h"[..]));
        assert_eq!(f.get_all("HOST").count(), 1);
        f.map_mut().insert(COOKIE, HeaderValue::from_static("c"));
        assert!(!f.absent(name_bit(&COOKIE)), "changed: no answer");
        assert_eq!(f.get(&COOKIE).map(|v| v.as_bytes()), Some(&b"c"[..]));
        f.summarise();
        assert!(!f.absent(name_bit(&COOKIE)));
        f.map_mut().remove(COOKIE);
        f.summarise();
        assert!(f.absent(name_bit(&COOKIE)));
        assert_eq!(f.first(&COOKIE, name_bit(&COOKIE)), None);
        assert_eq!(
            f.first(&HOST, name_bit(&HOST)).map(|v| v.as_bytes()),
            Some(&b"h"[..])
        );
    }

    #[test]
    fn every_read_sees_the_pending_changes() {
        let mut f = fields(&[("host", "h:80"), ("cookie", "a=1"), ("cookie", "b=2")]);
        f.summarise();
        set(&mut f, "host", "h");
        set(&mut f, "x-device", "mobile");
        unset(&mut f, "cookie");
        // By name, by text in any case, by the policy's name and bit.
        assert_eq!(f.get(HOST).map(|v| v.as_bytes()), Some(&b"h"[..]));
        assert_eq!(f.get("Host").map(|v| v.as_bytes()), Some(&b"h"[..]));
        assert_eq!(
            f.get("X-DEVICE").map(|v| v.as_bytes()),
            Some(&b"mobile"[..])
        );
        let device = name("x-device");
        assert_eq!(
            f.first(&device, name_bit(&device)).map(|v| v.as_bytes()),
            Some(&b"mobile"[..])
        );
        assert_eq!(f.get(COOKIE), None);
        assert_eq!(f.get_all("cookie").count(), 0, "both lines gone");
        assert!(!f.contains_key(&COOKIE));
        assert_eq!(f.first(&COOKIE, name_bit(&COOKIE)), None);
        assert_eq!(f.get_all(&HOST).count(), 1);
        // Set again after an unset, unset after a set.
        set(&mut f, "cookie", "c=3");
        unset(&mut f, "x-device");
        assert_eq!(f.get(COOKIE).map(|v| v.as_bytes()), Some(&b"c=3"[..]));
        assert_eq!(f.get("x-device"), None);
        assert_eq!(
            listed(&f),
            [("host".into(), "h".into()), ("cookie".into(), "c=3".into())]
        );
    }

    #[test]
    fn the_listing_keeps_a_maps_order_and_the_map_made_matches_it() {
        let mut f = fields(&[
            ("host", "h"),
            ("accept", "*/*"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("x-a", "1"),
            ("x-b", "2"),
        ]);
        set(&mut f, "x-new", "n");
        set(&mut f, "cookie", "c=3");
        unset(&mut f, "accept");
        set(&mut f, "x-later", "l");
        let want: Vec<(String, String)> = [
            ("host", "h"),
            ("cookie", "c=3"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("x-new", "n"),
            ("x-later", "l"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(listed(&f), want);
        assert_eq!(map_listed(&f.to_map()), want);
        assert_eq!(map_listed(&f.clone().into_map()), want);
        assert_eq!(map_listed(f.map_mut()), want);
        assert_eq!(listed(&f), want, "nothing pending after the fold");
    }

    /// A model of a map's fields: names in order, each with its values.
    #[derive(Default)]
    struct Model(Vec<(String, Vec<String>)>);

    impl Model {
        fn set(&mut self, n: &str, v: &str) {
            match self.0.iter_mut().find(|(m, _)| m == n) {
                Some((_, values)) => *values = vec![v.to_string()],
                None => self.0.push((n.to_string(), vec![v.to_string()])),
            }
        }
        fn unset(&mut self, n: &str) {
            self.0.retain(|(m, _)| m != n);
        }
        fn listed(&self) -> Vec<(String, String)> {
            self.0
                .iter()
                .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), v.clone())))
                .collect()
        }
    }

    #[test]
    fn random_changes_read_and_list_as_a_model_of_the_map() {
        // Changes drawn from a few names (some the request has, one with
        // two lines), checked after each against the model: every read,
        // the listing, and the map made from them.
        let names = ["host", "cookie", "x-device", "x-lang", "accept", "x-a"];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..300 {
            let mut f = fields(&[
                ("host", "h"),
                ("cookie", "a=1"),
                ("accept", "*/*"),
                ("cookie", "b=2"),
            ]);
            let mut model = Model::default();
            model.0.push(("host".into(), vec!["h".into()]));
            model
                .0
                .push(("cookie".into(), vec!["a=1".into(), "b=2".into()]));
            model.0.push(("accept".into(), vec!["*/*".into()]));
            if next(2) == 0 {
                f.summarise();
            }
            for step in 0..next(12) {
                let n = names[next(names.len() as u64) as usize];
                if next(3) == 0 {
                    unset(&mut f, n);
                    model.unset(n);
                } else {
                    let v = format!("v{round}-{step}");
                    set(&mut f, n, &v);
                    model.set(n, &v);
                }
                for n in names {
                    let want: Vec<String> = model
                        .0
                        .iter()
                        .filter(|(m, _)| m == n)
                        .flat_map(|(_, vs)| vs.clone())
                        .collect();
                    let got: Vec<String> = f
                        .get_all(n)
                        .map(|v| v.to_str().unwrap().to_string())
                        .collect();
                    assert_eq!(got, want, "round {round}: {n}");
                    let bit = name_bit(&name(n));
                    assert_eq!(
                        f.first(&name(n), bit)
                            .map(|v| v.to_str().unwrap().to_string()),
                        want.first().cloned(),
                        "round {round}: {n}"
                    );
                }
                assert_eq!(listed(&f), model.listed(), "round {round}");
            }
            assert_eq!(map_listed(&f.to_map()), model.listed(), "round {round}");
            assert_eq!(map_listed(&f.into_map()), model.listed(), "round {round}");
        }
    }

    #[test]
    fn more_changed_names_than_the_list_holds_are_folded_in() {
        let mut f = fields(&[("host", "h")]);
        f.summarise();
        for i in 0..150 {
            set(&mut f, &format!("x-n{i}"), &i.to_string());
        }
        for i in 0..150 {
            let n = name(&format!("x-n{i}"));
            let want = i.to_string();
            assert_eq!(
                f.first(&n, name_bit(&n)).map(|v| v.as_bytes()),
                Some(want.as_bytes())
            );
        }
        assert_eq!(f.iter().count(), 151);
    }

    #[test]
    fn accept_encoding_normalised_as_a_pending_change() {
        for (value, want) in [
            (None, None),
            (Some("br;q=0, gzip;q=0.5, *;q=0"), Some("gzip")),
            (Some("identity"), None),
            (Some("gzip"), Some("gzip")),
        ] {
            let mut f = fields(&[("host", "h")]);
            if let Some(v) = value {
                f.map_mut()
                    .insert(ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            f.summarise();
            f.normalise_accept_encoding();
            assert_eq!(
                f.get(ACCEPT_ENCODING).map(|v| v.to_str().unwrap()),
                want,
                "{value:?}"
            );
            assert_eq!(
                f.first(&ACCEPT_ENCODING, name_bit(&ACCEPT_ENCODING))
                    .map(|v| v.to_str().unwrap()),
                want,
                "{value:?}"
            );
            if value == Some("gzip") {
                assert!(f.pending.is_empty(), "already normal: nothing to change");
            }
        }
    }

    #[test]
    fn changing_the_map_forgets_the_summary() {
        let mut f = fields(&[("host", "h")]);
        f.summarise();
        f.map_mut().insert(COOKIE, HeaderValue::from_static("a=1"));
        assert!(!f.absent(name_bit(&COOKIE)));
        f.summarise();
        assert_eq!(
            f.first(&COOKIE, name_bit(&COOKIE)).map(|v| v.as_bytes()),
            Some(&b"a=1"[..])
        );
    }
}
