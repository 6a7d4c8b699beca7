//! AdmissionReview parsing and the what-if decision on arbitrary bodies: what
//! `/validate` does with a request, against an inventory holding the test estate. Any
//! panic is a bug (a malformed review must become a 400 or an allowed response with a
//! warning), and so is an inventory left changed after a decision.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use posture::admission::metrics::Metrics;
use posture::admission::review;
use posture::admission::server::{App, Cluster};
use posture::api::AdmissionMode;
use posture::collect::cluster::Change;
use posture::collect::manifests::{Manifests, read_text};

const ESTATE: &str = include_str!("../seeds/manifests/estate.yaml");

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let mut manifests = Manifests::default();
        read_text("estate.yaml", ESTATE, "default", &mut manifests);
        let mut cluster = Cluster::new(Some(AdmissionMode::Enforce));
        for object in manifests.inventory().objects() {
            cluster.apply(Change::Apply(object.clone()));
        }
        App::new(cluster, Arc::new(Metrics::default()), 1, None)
    })
}

fuzz_target!(|data: &[u8]| {
    let app = app();
    let Ok(request) = review::parse(data) else { return };
    let before = app.cluster.lock().unwrap().inventory.len();
    let (response, _outcome) = app.review(&request);
    serde_json::to_vec(&response).expect("a response always serialises");
    assert_eq!(before, app.cluster.lock().unwrap().inventory.len(), "inventory restored");
});
