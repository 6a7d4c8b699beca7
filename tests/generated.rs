//! Generated files stay in step with the code: `crds/` is what `posture crds` prints,
//! `docs/rules.md` what `posture rules --format markdown` prints.

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/posture.dev.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/posture.dev.yaml exists");
    let generated = posture::api::crds_yaml().expect("CRDs serialize");
    assert!(
        committed == generated,
        "crds/posture.dev.yaml is out of date: run `cargo run -- crds > crds/posture.dev.yaml`"
    );
}

#[test]
fn crds_carry_short_names_printer_columns_and_status() {
    let crds = posture::api::crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.spec.names.short_names.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, vec![vec!["sp".to_owned()], vec!["fnd".to_owned()]]);
    for crd in &crds {
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{}",
            crd.spec.names.kind
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() == 5)
        );
    }
    let finding = &crds[1].spec.versions[0];
    let columns: Vec<&str> = finding
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Severity", "Rule", "Subject", "State", "Age"]);
}

#[test]
fn committed_rule_docs_match_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md");
    let committed = std::fs::read_to_string(path).expect("docs/rules.md exists");
    let generated = posture::report::catalog::markdown(&posture::rules::Engine::default());
    assert!(
        committed == generated,
        "docs/rules.md is out of date: run `cargo run -- rules --format markdown > docs/rules.md`"
    );
}
