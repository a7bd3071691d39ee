//! Configuration: the model (routes: resources -> sinks, with their options), the
//! command line, the `--config` file, and how they merge. The command line is one more
//! route; a flag wins over the file, and the file over the defaults.

pub mod cli;
mod env;
pub mod file;
pub(crate) mod merge;
mod model;
pub mod values;

pub use cli::{CliExit, LogFormat, Logging, parse};
pub use model::*;
// The types a `Redaction` holds, nameable by an embedder that builds one.
pub use crate::informer::redact::{KEY_ENV, KeySource, RedactionKey};
pub use crate::informer::redact_path::{RedactPath, RedactPathError};
pub use crate::pointer::PointerError;
