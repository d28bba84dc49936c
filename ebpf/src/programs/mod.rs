pub mod lifecycle;
pub mod namespace;
