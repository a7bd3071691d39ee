//! One file per subcommand.

pub mod demo;
pub mod rbac;
pub mod watch;
