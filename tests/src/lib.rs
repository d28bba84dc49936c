pub mod agent;
pub mod escape;
pub mod runc;
pub mod runtimes;
pub mod scenario;
