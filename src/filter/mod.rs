//! Per-route filters and transforms, applied to each notification before it is queued
//! for the route's sinks: event types, a CEL predicate, noise suppression (changes only
//! in ignored fields), projection onto chosen fields, and JSON Patch diffs.
//!
//! [`FilterConfig`] is what the configuration says; [`Filters`] is it compiled (once per
//! route, shared by the route's informers); [`RouteStage`] applies it for one informer's
//! fan-out and counts what it holds back.

mod cel;
mod config;
mod path_set;
mod raw;
mod scan;
mod stage;

pub use cel::{MAX_NESTING, MAX_NODES, MAX_SOURCE_BYTES};
pub use config::{FilterConfig, OldObject, parse_types};
pub use stage::RouteFilter;
pub(crate) use stage::{Filters, RouteStage};
