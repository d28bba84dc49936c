pub mod agent;
pub mod runc;
pub mod scenario;
