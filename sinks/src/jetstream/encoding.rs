//! One JetStream message: the NATS message plus the `Nats-Msg-Id` it de-duplicates on.

use async_nats::HeaderMap;

use crate::Notification;
use crate::cloudevents::Format;
use crate::nats_client::message::message_for;

/// The body and headers of the message for `n`: those of core NATS, and
/// `Nats-Msg-Id` = [`Notification::id`], so the stream's duplicate window drops the
/// copies a retry publishes again.
pub(super) fn jetstream_message_for(
    n: &Notification,
    format: Format,
    source: Option<&str>,
) -> (bytes::Bytes, HeaderMap) {
    let (body, mut headers) = message_for(n, format, source);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, n.id());
    (body, headers)
}
