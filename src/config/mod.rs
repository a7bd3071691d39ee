//! Configuration: the model, the command line, the `--config` file, and how they merge.

pub mod cli;
pub mod file;
mod model;

pub use model::*;
