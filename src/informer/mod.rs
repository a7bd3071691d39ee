//! Shared informers: list and watch a resource, keep a cache, and turn every change
//! into a [`Notification`](kubebridge_sinks::Notification) for the subscribers.
//!
//! The flow mirrors client-go: the [`reflector`] (a state machine: list, then watch,
//! resume, relist) emits [`Delta`]s into a bounded channel (client-go's DeltaFIFO);
//! the [`processor`] task takes each to the [`diff`], which updates the [`store`] and
//! says what changed, hands the notifications to the [`fanout`] (every subscriber's
//! queue), and replays the cache on the [`resync`] schedule; [`shared`] makes one
//! informer per (resource, namespace, selectors) however many consume it. Every
//! subscriber is known before its informer starts: there are no late subscribers, so
//! every consumer sees the same stream from the initial list on.
//!
//! Every object passes the [`transform`] as it is decoded ([`redact`]: Secret values
//! and the [`redact_path`]s of user rules replaced by a keyed hash; `managedFields` removed),
//! so the cache and everything downstream only ever hold the transformed bytes.

pub mod backoff;
mod body;
pub mod delta;
pub(crate) mod diff;
pub(crate) mod fanout;
mod list_page;
pub mod object;
mod packer;
pub mod processor;
pub mod redact;
pub mod redact_path;
pub mod reflector;
pub(crate) mod resync;
pub mod shared;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;
pub mod transform;
mod wire;

pub use delta::Delta;
pub use fanout::Subscription;
pub use object::RawObject;
pub use processor::{Processor, ProcessorConfig};
pub use reflector::{Reflector, ReflectorConfig, ReflectorError};
pub use shared::{InformerSpec, Informers, RunningInformers};
pub use store::{CacheCompression, Store};
pub use transform::{ResolvedRule, Transforms};
