//! A delivered response's fields when a stored object's are written from
//! the object (`RespBody::Stored`): the response's map holds only what was
//! set after the delivery made it (the delivery's own fields are kept
//! beside the object's), and readers (the policy's `resp.http.*`) see them
//! all through its [`FieldsRead`]. A change to a name the stored fields
//! have first copies them into the map ([`map_for`]): the response is then
//! an ordinary one; a change to a name only the delivery set moves that
//! field into the map.

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use crate::body::{stored_field_shown, RespBody, StoredResponse};
use crate::http::req_fields::{FieldValues, FieldsRead, ListedValues};

/// A delivered response's fields as they will be written: its stored
/// fields and the delivery's own (when kept with its body) first, then its
/// map's.
impl FieldsRead for Response<RespBody> {
    fn get<K: AsHeaderName + AsRef<str>>(&self, name: K) -> Option<&HeaderValue> {
        if let Some(stored) = self.body().stored() {
            let (mut listed, mut own) = listed(stored, name.as_ref());
            if let Some(v) = listed.next().or_else(|| own.next()) {
                return Some(v);
            }
        }
        self.headers().get(name)
    }

    fn get_all<K: AsHeaderName + AsRef<str>>(&self, name: K) -> FieldValues<'_> {
        match self.body().stored() {
            Some(stored) => {
                let (listed, own) = listed(stored, name.as_ref());
                FieldValues::Listed(listed, own, self.headers().get_all(name).into_iter())
            }
            None => FieldValues::Map(self.headers().get_all(name).into_iter()),
        }
    }
}

/// The values of `name` among a stored response's object fields shown,
/// and among the delivery's.
fn listed<'a>(stored: &'a StoredResponse, name: &str) -> (ListedValues<'a>, ListedValues<'a>) {
    let leave_out = &stored.leave_out;
    (
        ListedValues::of(stored.obj.fields.delivered(), name, |n| {
            stored_field_shown(n, leave_out)
        }),
        ListedValues::of(stored.delivery.as_slice(), name, |_| true),
    )
}

/// `name` set to `value` alone on a delivered response. While its map is
/// still empty, a name not among the object's fields is set among the
/// delivery's (`set resp.http.X-Cache = "HIT"` in most `vcl_deliver`s:
/// replacing lacquer's own where it stands, as a map's `insert` would, or
/// added after them): a map built for one field, grown and dropped, was
/// ~600 instructions of a policy's hit. Otherwise in the map, as
/// [`map_for`] makes it; always there for the fields the server reads
/// from the map as it writes the head (`Connection: close`, a `Date`, the
/// framing: `h1::read_by_encoder`), which the delivery's are not.
pub fn set(resp: &mut Response<RespBody>, name: &HeaderName, value: HeaderValue) {
    let beside = resp.headers().is_empty() && !crate::h1::read_by_encoder(name);
    let value = match resp.body_mut().stored_mut() {
        Some(stored) if beside && !object_shows(stored, name) => {
            match stored.delivery.put(name.clone(), value) {
                Ok(()) => return,
                // The delivery's list is full: into the map after all.
                Err((_, value)) => value,
            }
        }
        _ => value,
    };
    map_for(resp, name).insert(name.clone(), value);
}

/// Whether a stored response shows a field of `name` among the object's.
fn object_shows(stored: &StoredResponse, name: &HeaderName) -> bool {
    stored_field_shown(name, &stored.leave_out)
        && stored.obj.fields.delivered().iter().any(|(n, _)| n == name)
}

/// The map to change `name` in: the response's own, after the stored
/// fields have been copied into it when they have `name` (so that the
/// change replaces or removes them); a field of `name` the delivery set is
/// moved into it.
pub fn map_for<'a>(resp: &'a mut Response<RespBody>, name: &HeaderName) -> &'a mut HeaderMap {
    let (stored_has, delivery_has) = match resp.body().stored() {
        Some(stored) => (object_shows(stored, name), stored.delivery.contains(name)),
        None => (false, false),
    };
    if stored_has {
        into_map(resp);
    } else if delivery_has {
        // `Response` lends its map and its body one at a time.
        let mut body = std::mem::replace(resp.body_mut(), RespBody::empty());
        if let Some(stored) = body.stored_mut() {
            stored.delivery.move_into(name, resp.headers_mut());
        }
        *resp.body_mut() = body;
    }
    resp.headers_mut()
}

/// Copies a stored response's fields into its map (first, in their order,
/// then what the delivery set) and makes its body an ordinary one.
pub fn into_map(resp: &mut Response<RespBody>) {
    let taken = std::mem::replace(resp.body_mut(), RespBody::empty());
    let RespBody::Stored(mut stored) = taken else {
        *resp.body_mut() = taken;
        return;
    };
    let own = std::mem::take(resp.headers_mut());
    let delivered = stored.obj.fields.delivered();
    let mut map =
        HeaderMap::with_capacity(delivered.len() + stored.delivery.as_slice().len() + own.len());
    for (n, v) in delivered {
        if stored_field_shown(n, &stored.leave_out) {
            map.append(n.clone(), v.clone());
        }
    }
    stored.delivery.drain_into(&mut map);
    let mut last: Option<HeaderName> = None;
    for (n, v) in own {
        // `None`: another value of the name before.
        if let Some(n) = n {
            last = Some(n);
        }
        if let Some(n) = &last {
            map.append(n.clone(), v);
        }
    }
    *resp.headers_mut() = map;
    *resp.body_mut() = RespBody::Full(stored.body.take());
}
