pub mod budget;
pub mod emit;
pub mod files;
pub mod pending;
pub mod task;
