pub mod emit;
pub mod task;
