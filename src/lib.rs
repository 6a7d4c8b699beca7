//! posture: a Kubernetes-native continuous security posture manager.
//!
//! The flow of `DESIGN.md`: collectors feed the [`inventory`]; [`rules`] judge it; the
//! operator writes findings and tags; the CLI and the webhook run the same engine.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod cli;
pub mod collect;
pub mod inventory;
pub mod net;
pub mod operator;
pub mod query;
pub mod report;
pub mod rules;
pub mod scan;
