//! One inventory of the infrastructure: assets (Kubernetes objects now, cloud resources
//! later), their relations, and the indexes the rules need. Fed by the operator's
//! watches, by `posture scan`'s manifest reader and by the webhook's what-if copy; it
//! knows none of them.

pub mod cloud;
pub mod compact;
mod graph;
pub(crate) mod model;
pub mod rbac;
pub mod store;
pub mod synthetic;
pub mod workload;

pub use graph::{Inventory, Relation, RelationKind};
pub use model::{AssetId, Kind, Object, ObjectKey};
