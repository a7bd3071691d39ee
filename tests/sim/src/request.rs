//! A request as the apiserver reads it: the resource path, the verb, query parameters, selectors and JSON body.

use std::collections::HashMap;

use http::Method;
use kubebridge_apimachinery::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::error::ApiError;
use crate::resources::selectable_fields;

/// The query parameters, decoded as the API server's Go `url.ParseQuery` does (`+` is a space).
pub(crate) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A boolean query parameter: `true` or `1`.
pub(crate) fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true") | Some("1"))
}

/// A parsed resource path.
pub(crate) struct ResourcePath {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) plural: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

/// Splits `/api/v1/...` or `/apis/group/version/...` into its parts; None for other paths.
pub(crate) fn parse_resource_path(segs: &[&str]) -> Option<ResourcePath> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let s = |x: &&str| Some(x.to_string());
    let (namespace, plural, name, subresource) = match rest {
        [res] => (None, res.to_string(), None, None),
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces".to_string(), s(ns), s(sub))
        }
        ["namespaces", ns, res] => (s(ns), res.to_string(), None, None),
        ["namespaces", ns, res, name] => (s(ns), res.to_string(), s(name), None),
        ["namespaces", ns, res, name, sub] => (s(ns), res.to_string(), s(name), s(sub)),
        [res, name] => (None, res.to_string(), s(name), None),
        [res, name, sub] => (None, res.to_string(), s(name), s(sub)),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    Some(ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    })
}

/// The API verb of a request (`get`, `list`, `watch`, `create`, ...), from its method and path.
pub(crate) fn verb(
    method: &Method,
    rp: &ResourcePath,
    query: &HashMap<String, String>,
) -> Result<&'static str, ApiError> {
    Ok(match (method, rp.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if truthy(query.get("watch")) => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    })
}

/// A request body as JSON, or the apiserver's 400.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

/// The label and field selectors of a list or watch, checked against the resource's selectable fields.
pub(crate) fn selectors(
    query: &HashMap<String, String>,
    resource: &str,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let param = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let labels = LabelSelector::parse(param("labelSelector"))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(param("fieldSelector"))
        .and_then(|f| f.check_supported(selectable_fields(resource)).map(|()| f))
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok((labels, fields))
}
