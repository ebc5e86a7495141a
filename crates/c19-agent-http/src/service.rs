//! The service that answers the requests of one connection.
//!
//! It calls the agent's handler directly rather than through an axum `Router`: the API
//! has a single handler for every path, and the router's layers (route lookup, handler
//! service, response mapping) were a visible share of a small `GET`. [`crate::router`]
//! wraps the same handler for callers that want a `Router`.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use c19_serve::StreamControl;
use futures::future::BoxFuture;
use tower_service::Service;

use crate::{
    routes::{App, answer},
    watch::Streaming,
};

/// Answers one connection's requests; a response marked [`Streaming`] marks the
/// connection. (Handing each request the connection's handle as an extension, as
/// `ConnectInfo` does, costs allocations on every request.)
#[derive(Debug, Clone)]
pub(crate) struct ConnectionService {
    app: Arc<App>,
    control: StreamControl,
}

impl ConnectionService {
    /// Answers the requests of the connection `control` is the handle of.
    pub(crate) fn new(app: Arc<App>, control: StreamControl) -> Self {
        Self { app, control }
    }
}

impl Service<Request> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Answer {
            inner: Box::pin(answer(self.app.clone(), request)),
            control: self.control.clone(),
        }
    }
}

/// The answer of [`ConnectionService`].
pub(crate) struct Answer {
    inner: BoxFuture<'static, Response>,
    control: StreamControl,
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(self.inner.as_mut().poll(cx));
        if response.extensions().get::<Streaming>().is_some() {
            self.control.streaming();
        }
        Poll::Ready(Ok(response))
    }
}
