//! posture's end-to-end harness: a real Kubernetes control plane built from the
//! pinned Go modules, run as local processes, plus a test kubelet that runs the
//! project's own pods. See `e2e/README.md`.
#![forbid(unsafe_code)]

pub mod bench;
pub mod binaries;
pub mod cluster;
pub mod controlplane;
pub mod kubelet;
pub mod moto;
pub mod pki;
pub mod ports;
pub mod process;
pub mod testing;
pub mod volumes;
