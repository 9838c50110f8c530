//! A delivered response's fields when a stored object's are written from
//! the object (`RespBody::Stored`): the response's map holds only what the
//! delivery set, and readers (the policy's `resp.http.*`) see the stored
//! fields through its [`FieldsRead`]. A change to a name the stored fields have
//! first copies them into the map ([`map_for`]): the response is then an
//! ordinary one.

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use crate::body::{stored_field_shown, RespBody};
use crate::http::req_fields::{FieldValues, FieldsRead, ListedValues};

/// A delivered response's fields as they will be written: its stored
/// fields (when kept with its body) first, then its map's.
impl FieldsRead for Response<RespBody> {
    fn get<K: AsHeaderName + AsRef<str>>(&self, name: K) -> Option<&HeaderValue> {
        if let Some((fields, leave_out)) = self.body().stored_fields() {
            let mut listed =
                ListedValues::of(fields, name.as_ref(), |n| stored_field_shown(n, leave_out));
            if let Some(v) = listed.next() {
                return Some(v);
            }
        }
        self.headers().get(name)
    }

    fn get_all<K: AsHeaderName + AsRef<str>>(&self, name: K) -> FieldValues<'_> {
        match self.body().stored_fields() {
            Some((fields, leave_out)) => {
                let listed =
                    ListedValues::of(fields, name.as_ref(), |n| stored_field_shown(n, leave_out));
                FieldValues::Listed(listed, self.headers().get_all(name).into_iter())
            }
            None => FieldValues::Map(self.headers().get_all(name).into_iter()),
        }
    }
}

/// The map to change `name` in: the response's own, after the stored
/// fields have been copied into it when they have `name` (so that the
/// change replaces or removes them).
pub fn map_for<'a>(resp: &'a mut Response<RespBody>, name: &HeaderName) -> &'a mut HeaderMap {
    let stored_has = resp
        .body()
        .stored_fields()
        .is_some_and(|(fields, leave_out)| {
            stored_field_shown(name, leave_out) && fields.iter().any(|(n, _)| n == name)
        });
    if stored_has {
        into_map(resp);
    }
    resp.headers_mut()
}

/// Copies a stored response's fields into its map (first, in their order,
/// then what the delivery set) and makes its body an ordinary one.
pub fn into_map(resp: &mut Response<RespBody>) {
    let taken = std::mem::replace(resp.body_mut(), RespBody::empty());
    let RespBody::Stored(obj, body, leave_out) = taken else {
        *resp.body_mut() = taken;
        return;
    };
    let own = std::mem::take(resp.headers_mut());
    let mut map = HeaderMap::with_capacity(obj.fields.delivered().len() + own.len());
    for (n, v) in obj.fields.delivered() {
        if stored_field_shown(n, &leave_out) {
            map.append(n.clone(), v.clone());
        }
    }
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
    *resp.body_mut() = RespBody::Full(body);
}
