//! A response body that holds a guard until the body is sent in full or dropped: what must last
//! as long as the response (a request counted in flight, a request's log line and span) ends
//! with it, not when the handler returns.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// `body`, with `guard` dropped when the body is.
pub struct HeldUntilSent<G> {
    body: Body,
    _guard: G,
}

impl<G> HeldUntilSent<G> {
    pub fn new(body: Body, guard: G) -> HeldUntilSent<G> {
        HeldUntilSent {
            body,
            _guard: guard,
        }
    }
}

impl<G: Unpin> HttpBody for HeldUntilSent<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
