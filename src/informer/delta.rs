//! A delta: one thing the reflector saw (a complete list or one watch event), in order.

use super::RawObject;

/// What the reflector saw, in the order it saw it.
#[derive(Debug)]
pub enum Delta {
    /// A complete list: the initial state (`initial`) or a relist after a gap.
    Replace {
        /// Every object in the list.
        objects: Vec<RawObject>,
        /// Whether this is the first list of this informer.
        initial: bool,
    },
    /// A watch ADDED event.
    Added(RawObject),
    /// A watch MODIFIED event.
    Modified(RawObject),
    /// A watch DELETED event, with the object's final state.
    Deleted(RawObject),
}
