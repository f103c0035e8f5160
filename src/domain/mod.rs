//! The domain: the request, decoded once into types that cannot hold an invalid one; what an
//! opportunity holds; and the outcome vocabulary every trigger's answer is made from.

pub mod opportunity;
pub mod outcome;
pub mod request;
