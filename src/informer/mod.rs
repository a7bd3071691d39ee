//! Shared informers: list and watch a resource, keep a cache, and turn every change
//! into a [`Notification`](kubebridge_sinks::Notification) for the subscribers.
//!
//! The flow mirrors client-go: the [`reflector`] lists and watches and emits
//! [`Delta`]s into a bounded channel (client-go's DeltaFIFO); the [`processor`] applies
//! them to the [`store`] and sends notifications to every subscriber; [`shared`] makes
//! one informer per (resource, namespace, selectors) however many consume it.

pub mod backoff;
pub mod object;
pub mod processor;
pub mod reflector;
pub mod shared;
pub mod store;

pub use object::RawObject;
pub use processor::{Delta, Processor, ProcessorConfig, Subscriber};
pub use reflector::{Reflector, ReflectorConfig, ReflectorError};
pub use shared::{InformerSpec, Informers, RunningInformers};
pub use store::Store;
