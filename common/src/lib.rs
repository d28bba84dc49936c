//! Everything that crosses the kernel/user boundary of escapewatch, defined once.
//!
//! The eBPF programs (`escapewatch-ebpf`) write these structures into ring buffers and read
//! [`config::KernelConfig`] from a read-only global; the agent decodes them with the `user`
//! feature. Every wire type is `#[repr(C)]` with fixed-width fields, explicit padding and a
//! compile-time size assertion, so any layout change is a deliberate [`SCHEMA_VERSION`] bump.
#![no_std]

#[cfg(feature = "user")]
extern crate alloc;

pub mod abi;
pub mod calls;
pub mod config;
pub mod event;
pub mod kind;
pub mod maps;
pub mod programs;
#[cfg(feature = "user")]
pub mod user;

/// Version of the wire layout. Bump it on any change to a type in this crate.
pub const SCHEMA_VERSION: u16 = 8;

/// Length of `task_struct.comm` (TASK_COMM_LEN).
pub const COMM_LEN: usize = 16;
/// Bytes of an exec'd file name carried in an event (longer names are truncated, flagged).
pub const PATH_LEN: usize = 256;
/// Bytes of the argument vector carried in an exec event (NUL-separated, truncated, flagged).
pub const ARGS_LEN: usize = 512;
