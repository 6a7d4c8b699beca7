//! Effective IAM permissions: policy documents parsed into statements, and for every
//! principal (user, group, role) the union of its inline, attached managed and (for
//! users) group policies, Deny subtracted, wildcards and `NotAction` expanded against
//! the action catalog, a permissions boundary intersected when it is known.
//!
//! This is an index of the inventory, like `rbac` for Kubernetes: it computes what a
//! principal can do and never judges it. Conditions are kept and shown; they are treated
//! conservatively: a conditional Allow still counts, a conditional or resource-scoped
//! Deny does not subtract.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::actions::{AccessLevel, ActionCatalog, ActionSet, matches};
use super::snapshot::{IamData, InlinePolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement of a policy document, as written (patterns keep their case).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub effect: Effect,
    pub sid: Option<String>,
    pub not_action: bool,
    pub actions: Vec<String>,
    pub not_resource: bool,
    pub resources: Vec<String>,
    /// `Principal` (trust and resource policies); `"*"` or an object of lists.
    pub principal: Option<Value>,
    pub not_principal: bool,
    pub condition: Option<Value>,
}

impl Statement {
    pub fn conditional(&self) -> bool {
        self.condition
            .as_ref()
            .is_some_and(|c| c.as_object().is_some_and(|o| !o.is_empty()))
    }

    pub fn matches_action(&self, action: &str) -> bool {
        let any = self.actions.iter().any(|p| matches(p, action));
        any != self.not_action
    }

    /// Whether the statement covers every resource (`Resource: "*"`).
    pub fn all_resources(&self) -> bool {
        !self.not_resource && self.resources.iter().any(|r| r == "*")
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The statements of a policy document (`Statement` may be one object or a list).
/// Elements that are not statements are skipped.
pub fn statements(document: &Value) -> Vec<Statement> {
    let list = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|s| {
            let effect = match s.get("Effect")?.as_str()? {
                e if e.eq_ignore_ascii_case("allow") => Effect::Allow,
                e if e.eq_ignore_ascii_case("deny") => Effect::Deny,
                _ => return None,
            };
            let (not_action, actions) = match (s.get("Action"), s.get("NotAction")) {
                (Some(a), _) => (false, strings(Some(a))),
                (None, Some(n)) => (true, strings(Some(n))),
                (None, None) => (false, Vec::new()),
            };
            let (not_resource, resources) = match (s.get("Resource"), s.get("NotResource")) {
                (Some(r), _) => (false, strings(Some(r))),
                (None, Some(n)) => (true, strings(Some(n))),
                (None, None) => (false, Vec::new()),
            };
            let (not_principal, principal) = match (s.get("Principal"), s.get("NotPrincipal")) {
                (Some(p), _) => (false, Some(p.clone())),
                (None, Some(p)) => (true, Some(p.clone())),
                (None, None) => (false, None),
            };
            Some(Statement {
                effect,
                sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
                not_action,
                actions,
                not_resource,
                resources,
                principal,
                not_principal,
                condition: s.get("Condition").cloned(),
            })
        })
        .collect()
}

/// A parsed policy with its expanded action sets.
#[derive(Debug)]
pub struct ParsedPolicy {
    /// `AdministratorAccess` or `role/app: inline s3-access`.
    pub name: String,
    /// Managed policies only.
    pub arn: Option<String>,
    pub statements: Vec<Statement>,
    /// Actions some Allow grants (any resource, conditions ignored: conservative).
    pub allow: ActionSet,
    /// Actions some Allow grants on `Resource: "*"`.
    pub allow_all_resources: ActionSet,
    /// Actions an unconditional `Deny` on `Resource: "*"` removes.
    pub deny: ActionSet,
}

impl ParsedPolicy {
    pub fn new(
        name: String,
        arn: Option<String>,
        document: &Value,
        catalog: &ActionCatalog,
    ) -> Self {
        let statements = statements(document);
        let mut allow = ActionSet::empty(catalog);
        let mut allow_all_resources = ActionSet::empty(catalog);
        let mut deny = ActionSet::empty(catalog);
        for s in &statements {
            let mut set = ActionSet::empty(catalog);
            for pattern in &s.actions {
                set.add(&catalog.expand(pattern), catalog);
            }
            if s.not_action {
                set = set.complement(catalog);
            }
            match s.effect {
                Effect::Allow => {
                    if s.all_resources() {
                        allow_all_resources.union(&set);
                    }
                    allow.union(&set);
                }
                Effect::Deny if s.all_resources() && !s.conditional() => deny.union(&set),
                Effect::Deny => {}
            }
        }
        Self {
            name,
            arn,
            statements,
            allow,
            allow_all_resources,
            deny,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    User,
    Group,
    Role,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Role => "role",
        }
    }
}

/// A user, group or role with every policy that applies to it.
#[derive(Debug)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    pub arn: String,
    pub account: String,
    pub policies: Vec<Arc<ParsedPolicy>>,
    /// Attached managed policies not in the snapshot (cannot be judged).
    pub unknown_policies: Vec<String>,
    pub boundary: Option<Arc<ParsedPolicy>>,
    /// Roles: the trust policy's statements.
    pub trust: Vec<Statement>,
    pub instance_profiles: Vec<String>,
    effective: std::sync::OnceLock<Effective>,
}

/// What a principal may do, computed once.
#[derive(Debug, Clone)]
pub struct Effective {
    pub allowed: ActionSet,
    pub allowed_all_resources: ActionSet,
}

impl Effective {
    /// Every action, on every resource.
    pub fn is_admin(&self, catalog: &ActionCatalog) -> bool {
        self.allowed_all_resources.len() as usize == catalog.len()
    }

    pub fn count_by_level(&self, catalog: &ActionCatalog) -> BTreeMap<AccessLevel, u32> {
        let mut out = BTreeMap::new();
        for id in self.allowed.iter() {
            *out.entry(catalog.level(id)).or_insert(0) += 1;
        }
        out
    }
}

/// One statement that grants an action to a principal (evidence for findings).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub policy: String,
    /// `*`, the resource patterns, or `NotResource ...`.
    pub resources: String,
    pub conditional: bool,
    /// The resources name the principal itself (and nothing broader).
    pub only_self: bool,
}

impl Principal {
    /// The effective permissions (computed on first use); see the module comment for
    /// the semantics.
    pub fn effective(&self, catalog: &ActionCatalog) -> &Effective {
        self.effective
            .get_or_init(|| self.compute_effective(catalog))
    }

    fn compute_effective(&self, catalog: &ActionCatalog) -> Effective {
        let mut allowed = ActionSet::empty(catalog);
        let mut allowed_all_resources = ActionSet::empty(catalog);
        let mut denied = ActionSet::empty(catalog);
        for policy in &self.policies {
            allowed.union(&policy.allow);
            allowed_all_resources.union(&policy.allow_all_resources);
            denied.union(&policy.deny);
        }
        allowed.subtract(&denied);
        allowed_all_resources.subtract(&denied);
        if let Some(boundary) = &self.boundary {
            let mut limit = boundary.allow.clone();
            limit.subtract(&boundary.deny);
            allowed.intersect(&limit);
            allowed_all_resources.intersect(&boundary.allow_all_resources);
        }
        Effective {
            allowed,
            allowed_all_resources,
        }
    }

    /// Statements that allow `action`, with their resources.
    pub fn grants(&self, action: &str) -> Vec<Grant> {
        let mut out = Vec::new();
        for policy in &self.policies {
            for s in &policy.statements {
                if s.effect != Effect::Allow || !s.matches_action(action) {
                    continue;
                }
                let resources = if s.not_resource {
                    format!("NotResource {}", s.resources.join(", "))
                } else {
                    s.resources.join(", ")
                };
                let only_self = !s.not_resource
                    && !s.resources.is_empty()
                    && s.resources.iter().all(|r| self.is_self(r));
                out.push(Grant {
                    policy: policy.name.clone(),
                    resources,
                    conditional: s.conditional(),
                    only_self,
                });
            }
        }
        out
    }

    /// Whether a resource pattern names this principal and only it.
    fn is_self(&self, resource: &str) -> bool {
        let substituted = resource.replace("${aws:username}", &self.name);
        substituted == self.arn
    }

    /// Allowed by the expanded set, or (for actions the catalog does not know yet) by
    /// a statement directly.
    pub fn allows(&self, action: &str, effective: &Effective, catalog: &ActionCatalog) -> bool {
        match catalog.id(action) {
            Some(id) => effective.allowed.contains(id),
            None => !self.grants(action).is_empty(),
        }
    }
}

/// Every principal of the snapshots, with policies resolved.
#[derive(Debug, Default)]
pub struct IamIndex {
    principals: BTreeMap<String, Arc<Principal>>,
    policies: HashMap<String, Arc<ParsedPolicy>>,
}

impl IamIndex {
    /// Builds the index of one account's IAM data.
    pub fn add_account(&mut self, account: &str, data: &IamData, catalog: &ActionCatalog) {
        for p in &data.policies {
            let parsed =
                ParsedPolicy::new(p.name.clone(), Some(p.arn.clone()), &p.document, catalog);
            self.policies.insert(p.arn.clone(), Arc::new(parsed));
        }
        let inline = |owner: &str, list: &[InlinePolicy]| -> Vec<Arc<ParsedPolicy>> {
            list.iter()
                .map(|p| {
                    Arc::new(ParsedPolicy::new(
                        format!("{owner}: inline {}", p.name),
                        None,
                        &p.document,
                        catalog,
                    ))
                })
                .collect()
        };
        let mut group_policies: HashMap<&str, Vec<Arc<ParsedPolicy>>> = HashMap::new();
        let mut unknown_of_group: HashMap<&str, Vec<String>> = HashMap::new();
        for g in &data.groups {
            let (mut policies, unknown) = self.managed(&g.attached_policies);
            policies.extend(inline(&format!("group/{}", g.name), &g.inline_policies));
            group_policies.insert(&g.name, policies.clone());
            unknown_of_group.insert(&g.name, unknown.clone());
            self.insert(Principal {
                kind: PrincipalKind::Group,
                name: g.name.clone(),
                arn: g.arn.clone(),
                account: account.to_owned(),
                policies,
                unknown_policies: unknown,
                boundary: None,
                trust: Vec::new(),
                instance_profiles: Vec::new(),
                effective: Default::default(),
            });
        }
        for u in &data.users {
            let (mut policies, mut unknown) = self.managed(&u.attached_policies);
            policies.extend(inline(&format!("user/{}", u.name), &u.inline_policies));
            for group in &u.groups {
                policies.extend(
                    group_policies
                        .get(group.as_str())
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
                unknown.extend(
                    unknown_of_group
                        .get(group.as_str())
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            let boundary = u
                .permissions_boundary
                .as_ref()
                .and_then(|b| self.policies.get(b).cloned());
            self.insert(Principal {
                kind: PrincipalKind::User,
                name: u.name.clone(),
                arn: u.arn.clone(),
                account: account.to_owned(),
                policies,
                unknown_policies: unknown,
                boundary,
                trust: Vec::new(),
                instance_profiles: Vec::new(),
                effective: Default::default(),
            });
        }
        for r in &data.roles {
            let (mut policies, unknown) = self.managed(&r.attached_policies);
            policies.extend(inline(&format!("role/{}", r.name), &r.inline_policies));
            let boundary = r
                .permissions_boundary
                .as_ref()
                .and_then(|b| self.policies.get(b).cloned());
            self.insert(Principal {
                kind: PrincipalKind::Role,
                name: r.name.clone(),
                arn: r.arn.clone(),
                account: account.to_owned(),
                policies,
                unknown_policies: unknown,
                boundary,
                trust: statements(&r.trust_policy),
                instance_profiles: r.instance_profiles.clone(),
                effective: Default::default(),
            });
        }
    }

    fn managed(&self, arns: &[String]) -> (Vec<Arc<ParsedPolicy>>, Vec<String>) {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for arn in arns {
            match self.policies.get(arn) {
                Some(p) => found.push(p.clone()),
                None => unknown.push(arn.clone()),
            }
        }
        (found, unknown)
    }

    fn insert(&mut self, principal: Principal) {
        self.principals
            .insert(principal.arn.clone(), Arc::new(principal));
    }

    pub fn principal(&self, arn: &str) -> Option<&Arc<Principal>> {
        self.principals.get(arn)
    }

    pub fn principals(&self) -> impl Iterator<Item = &Arc<Principal>> {
        self.principals.values()
    }

    pub fn len(&self) -> usize {
        self.principals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
    }

    /// The role an instance profile carries.
    pub fn role_of_instance_profile(&self, profile_arn: &str) -> Option<&Arc<Principal>> {
        self.principals
            .values()
            .find(|p| p.instance_profiles.iter().any(|i| i == profile_arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::cloud::snapshot::{IamGroup, IamRole, IamUser, ManagedPolicy};
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";

    fn arn(kind: &str, name: &str) -> String {
        format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
    }

    fn inline(doc: Value) -> Vec<InlinePolicy> {
        vec![InlinePolicy {
            name: "p".into(),
            document: doc,
        }]
    }

    fn index(data: IamData) -> IamIndex {
        let mut index = IamIndex::default();
        index.add_account(ACCOUNT, &data, ActionCatalog::shipped());
        index
    }

    #[test]
    fn statements_accept_single_objects_strings_and_not_forms() {
        let doc = json!({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "NotResource": ["arn:x"], "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}});
        let s = &statements(&doc)[0];
        assert!(s.not_action && s.not_resource && s.conditional());
        assert!(s.matches_action("s3:GetObject"));
        assert!(!s.matches_action("iam:PassRole"));
        assert!(statements(&json!({"Statement": [1, {"Effect": "Maybe"}]})).is_empty());
    }

    #[test]
    fn users_get_group_policies_and_deny_subtracts() {
        let catalog = ActionCatalog::shipped();
        let data = IamData {
            users: vec![IamUser {
                name: "alice".into(),
                arn: arn("user", "alice"),
                groups: vec!["admins".into()],
                inline_policies: inline(
                    json!({"Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}]}),
                ),
                ..Default::default()
            }],
            groups: vec![IamGroup {
                name: "admins".into(),
                arn: arn("group", "admins"),
                attached_policies: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()],
                ..Default::default()
            }],
            policies: vec![ManagedPolicy {
                name: "AdministratorAccess".into(),
                arn: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
                document: json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                ..Default::default()
            }],
            ..Default::default()
        };
        let index = index(data);
        let group = index.principal(&arn("group", "admins")).unwrap();
        assert!(group.effective(catalog).is_admin(catalog));
        let alice = index.principal(&arn("user", "alice")).unwrap();
        let effective = alice.effective(catalog);
        assert!(!effective.is_admin(catalog), "the Deny removes iam:*");
        assert!(!alice.allows("iam:PassRole", effective, catalog));
        assert!(alice.allows("s3:GetObject", effective, catalog));
    }

    #[test]
    fn conditional_and_scoped_denies_do_not_subtract_and_boundaries_intersect() {
        let catalog = ActionCatalog::shipped();
        let data = IamData {
            roles: vec![IamRole {
                name: "app".into(),
                arn: arn("role", "app"),
                inline_policies: inline(json!({"Statement": [
                    {"Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances", "s3:*"], "Resource": "*"},
                    {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*", "Condition": {"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}},
                    {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:*:*:instance/*"}
                ]})),
                permissions_boundary: Some(arn("policy", "boundary")),
                ..Default::default()
            }],
            policies: vec![ManagedPolicy {
                name: "boundary".into(),
                arn: arn("policy", "boundary"),
                document: json!({"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}),
                ..Default::default()
            }],
            ..Default::default()
        };
        let index = index(data);
        let role = index.principal(&arn("role", "app")).unwrap();
        let effective = role.effective(catalog);
        assert!(role.allows("iam:PassRole", effective, catalog));
        assert!(role.allows("ec2:RunInstances", effective, catalog));
        assert!(
            !role.allows("s3:GetObject", effective, catalog),
            "outside the boundary"
        );
        let grants = role.grants("iam:PassRole");
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].resources, "*");
    }

    #[test]
    fn grants_know_when_a_user_may_only_act_on_itself() {
        let data = IamData {
            users: vec![IamUser {
                name: "bob".into(),
                arn: arn("user", "bob"),
                inline_policies: inline(json!({"Statement": [
                    {"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "arn:aws:iam::123456789012:user/${aws:username}"},
                    {"Effect": "Allow", "Action": "iam:AttachUserPolicy", "Resource": "arn:aws:iam::123456789012:user/*"}
                ]})),
                ..Default::default()
            }],
            ..Default::default()
        };
        let index = index(data);
        let bob = index.principal(&arn("user", "bob")).unwrap();
        assert!(bob.grants("iam:CreateAccessKey")[0].only_self);
        assert!(!bob.grants("iam:AttachUserPolicy")[0].only_self);
    }
}
