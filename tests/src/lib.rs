pub mod agent;
pub mod runc;
