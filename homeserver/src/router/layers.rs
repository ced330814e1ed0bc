//! Layers every request passes through, outermost first: panic guard, tracing span, CORS,
//! and the early body-size check.

use std::{any::Any, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};
use tracing::Span;

use super::AppState;
use crate::error::Error;

pub fn apply(router: Router<AppState>, state: AppState) -> Router<AppState> {
    router.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request| {
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            user = tracing::field::Empty,
                            status = tracing::field::Empty,
                        )
                    })
                    .on_request(())
                    .on_response(|response: &Response, latency: Duration, span: &Span| {
                        span.record("status", response.status().as_u16());
                        tracing::debug!(latency_ms = latency.as_secs_f64() * 1000.0, "answered");
                    }),
            )
            .layer(cors())
            .layer(middleware::from_fn_with_state(state, reject_declared_oversize)),
    )
}

/// The headers the client-server spec asks for, so that browser clients (Element Web,
/// Hydrogen) can call us from another origin. Preflights are answered here.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
}

/// Refuses a body whose declared length is over the limit before a byte of it is read.
async fn reject_declared_oversize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Media uploads stream to disk under their own, larger limit.
    let limit = if crate::api::media::is_upload(request.method(), request.uri().path()) {
        state.config.media.max_upload_bytes
    } else {
        super::ruma::body_limit(&state, request.uri().path())
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        let mut response = Error::too_large(format!("Request body is larger than {limit} bytes")).into_response();
        // The body will not be read, so the connection cannot be reused.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    Error::internal(format!("handler panicked: {detail}")).into_response()
}
