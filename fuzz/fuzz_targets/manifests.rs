//! The manifest reader and everything behind it on arbitrary input: splitting,
//! YAML/JSON parsing, object decoding, the inventory and a full evaluation. Any panic
//! is a bug: bad input must become an input error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture::collect::manifests::{Manifests, read_text};
use posture::rules::policy::{Policy, PolicySet};
use posture::rules::{Engine, Evaluation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut manifests = Manifests::default();
    read_text("fuzz.yaml", text, "default", &mut manifests);
    let inventory = manifests.inventory();
    let engine = Engine::default();
    let policies = PolicySet::single(Policy::allow_all());
    let (evaluation, _) = Evaluation::full(&engine, &inventory, &policies);
    let sources = manifests.take_sources();
    for finding in evaluation.findings() {
        let _ = sources.get(&finding.subject);
    }
});
