//! The programs live in the `escapewatch` binary target, built for the BPF target. This library
//! exists so that the agent can declare a build-dependency on this package (cargo then rebuilds
//! the agent when the programs change).
#![no_std]
