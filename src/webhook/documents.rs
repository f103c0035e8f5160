//! The body of a webhook call: the raw bytes the CRM sent (the signature is checked over them), then
//! one request document or a list of 1 to [`MAX_DOCUMENTS`], each decoded as every trigger decodes it.

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;

use crate::domain::request::{CATALOG, Catalog, DisassociationRequest};

/// The most documents one webhook call may carry.
pub const MAX_DOCUMENTS: usize = 100;

/// One member at fault in one document of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidMember {
    /// The document's position in the list (0 for a body of one document).
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// Why the body's documents cannot be queued (the CRM is answered 400): in a sentence, and every
/// member at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub message: String,
    pub errors: Vec<InvalidMember>,
}

impl Rejection {
    fn whole(message: String) -> Self {
        Self { message, errors: Vec::new() }
    }
}

/// Why the body could not be taken.
pub enum BodyError {
    TooLarge,
    /// `isBase64Encoded`, and the body is not base64.
    NotBase64,
}

/// The body as the CRM sent it, within `max` bytes.
pub fn raw_body(event: &LambdaFunctionUrlRequest, max: usize) -> Result<Vec<u8>, BodyError> {
    let text = event.body.as_deref().unwrap_or_default();
    if !event.is_base64_encoded {
        return if text.len() > max { Err(BodyError::TooLarge) } else { Ok(text.as_bytes().to_vec()) };
    }
    // Base64 takes 4 characters per 3 bytes: what cannot fit is refused before it is decoded.
    if text.len() > max.div_ceil(3) * 4 {
        return Err(BodyError::TooLarge);
    }
    let body = BASE64.decode(text).map_err(|_| BodyError::NotBase64)?;
    if body.len() > max { Err(BodyError::TooLarge) } else { Ok(body) }
}

/// The body's documents, each decoded and in an allowed catalog; or the rejection that names every
/// fault.
pub fn requests(body: &[u8], allowed_catalogs: &[Catalog]) -> Result<Vec<DisassociationRequest>, Rejection> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| Rejection::whole(format!("the body is not JSON: {e}")))?;
    let documents: Vec<&Value> = match &doc {
        Value::Array(items) if items.is_empty() => {
            return Err(Rejection::whole(format!("the list is empty: send 1 to {MAX_DOCUMENTS} request documents")));
        }
        Value::Array(items) if items.len() > MAX_DOCUMENTS => {
            return Err(Rejection::whole(format!(
                "the list has {} documents: send at most {MAX_DOCUMENTS} per request",
                items.len()
            )));
        }
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut requests = Vec::with_capacity(documents.len());
    let mut errors = Vec::new();
    let mut invalid_documents = 0;
    for (index, document) in documents.iter().enumerate() {
        let request = DisassociationRequest::from_document(document).map_err(|invalid| {
            invalid.errors.into_iter().map(|e| InvalidMember { index, field: e.field, message: e.message }).collect()
        });
        // The worker would only dead-letter a request for another catalog: the CRM learns at once.
        let request = request.and_then(|request| match request.catalog.allowed_in(allowed_catalogs) {
            Ok(()) => Ok(request),
            Err(message) => Err(vec![InvalidMember { index, field: CATALOG, message }]),
        });
        match request {
            Ok(request) => requests.push(request),
            Err(members) => {
                invalid_documents += 1;
                errors.extend(members);
            }
        }
    }
    if errors.is_empty() {
        return Ok(requests);
    }
    Err(Rejection {
        message: format!("{invalid_documents} of {} document(s) invalid: nothing was queued", documents.len()),
        errors,
    })
}
