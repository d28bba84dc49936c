pub mod agent;
pub mod escape;
pub mod podman;
pub mod runc;
pub mod runtimes;
pub mod scenario;
