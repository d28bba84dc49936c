pub mod budget;
pub mod emit;
pub mod files;
pub mod opaque;
pub mod pending;
pub mod task;
