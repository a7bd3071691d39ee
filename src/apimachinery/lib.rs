//! Kubernetes wire details that kubebridge and its simulated API server both need, each
//! written once: label and field selectors, the `Status` error body, DNS-1123 and label
//! name syntax, and the `kind`/`apiVersion` splice into an object's raw JSON.

mod names;
mod selector;
mod status;
mod type_meta;

pub use names::{
    dns1123_label_error, dns1123_subdomain_error, is_dns1123_label, label_key_error,
    label_value_error,
};
pub use selector::{FieldSelector, LabelSelector, SelectorError};
pub use status::{Status, StatusCause, StatusDetails, failure_status, parse_status, status_json};
pub use type_meta::with_type_meta;
