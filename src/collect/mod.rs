//! Collectors: they read the world into the inventory and never judge it.

pub mod aws;
pub mod cluster;
pub mod manifests;
