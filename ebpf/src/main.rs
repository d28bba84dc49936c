//! All escapewatch kernel programs, in one object.
//!
//! Layout: `maps` holds every map and the load-time config global; `helpers` the task reads and
//! the one emit path; `programs/<family>.rs` one hook family per file.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod helpers;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod programs;

// Ring buffers and bpf_probe_read_kernel are GPL-only helpers.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this, so it is never called.
    loop {}
}

/// Built for the host only so that workspace-wide `cargo check`/`clippy` succeed.
#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("escapewatch-ebpf is an eBPF object: build it for bpfel-unknown-none");
    std::process::exit(2);
}
