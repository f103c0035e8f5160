//! The webhook's answers to the CRM: an HTTP status and a small JSON body (docs/webhook.md lists them).

use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::{CONTENT_TYPE, HeaderName};
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlResponse;
use serde_json::{Value, json};

use super::documents::Rejection;

/// How long a CRM is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "10";

/// An answer to the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body, headers: Vec::new() }
    }

    fn message(status: u16, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "message": message.into() }))
    }

    /// 202: every request queued, with the message ids in the documents' order.
    pub fn accepted(message_ids: Vec<String>) -> Self {
        Self::new(202, json!({ "queued": message_ids.len(), "messageIds": message_ids }))
    }

    /// 400, naming every member at fault.
    pub fn bad_request(rejection: Rejection) -> Self {
        Self::new(400, json!({ "message": rejection.message, "errors": rejection.errors }))
    }

    /// 401, and not a word about why.
    pub fn unauthorized() -> Self {
        Self::message(401, "unauthorized")
    }

    pub fn method_not_allowed() -> Self {
        let mut reply = Self::message(405, "method not allowed: send a POST");
        reply.headers.push(("allow", "POST"));
        reply
    }

    pub fn too_large(max_body_bytes: usize) -> Self {
        Self::message(413, format!("the body is larger than {max_body_bytes} bytes"))
    }

    /// 503: the work queue did not take every request; the CRM retries.
    pub fn unavailable() -> Self {
        let mut reply = Self::message(503, "the work queue cannot take the requests now: retry later");
        reply.headers.push(("retry-after", RETRY_AFTER_SECONDS));
        reply
    }

    /// The HTTP response Lambda returns for a Function URL invocation.
    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut response = LambdaFunctionUrlResponse::default();
        response.status_code = i64::from(self.status);
        response.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            response.headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        response.body = Some(self.body.to_string());
        response
    }
}
