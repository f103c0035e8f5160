//! The domain: the request, decoded once into types that cannot hold an invalid one; what an
//! opportunity holds; the outcome vocabulary every trigger's answer is made from; and the webhook's
//! secret as a value that never shows itself.

pub mod opportunity;
pub mod outcome;
pub mod request;
pub mod secret;
