//! Data the rules read: shipped in `config/`, embedded at build time.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct RiskyPort {
    pub port: u16,
    pub service: String,
}

#[derive(Debug, Clone)]
pub struct RuleConfig {
    risky_ports: HashMap<u16, String>,
    escalation_methods: Vec<super::iam::EscalationMethod>,
}

const RISKY_PORTS: &str = include_str!("../../config/risky-ports.yaml");

impl Default for RuleConfig {
    fn default() -> Self {
        let ports: Vec<RiskyPort> = serde_yaml_ng::from_str(RISKY_PORTS)
            .expect("config/risky-ports.yaml is valid (tested)");
        Self::with_risky_ports(ports)
    }
}

impl RuleConfig {
    pub fn with_risky_ports(ports: Vec<RiskyPort>) -> Self {
        Self {
            risky_ports: ports.into_iter().map(|p| (p.port, p.service)).collect(),
            escalation_methods: super::iam::shipped_methods(),
        }
    }

    /// The AWS privilege-escalation methods (`config/iam-escalation.yaml`).
    pub fn escalation_methods(&self) -> &[super::iam::EscalationMethod] {
        &self.escalation_methods
    }

    /// The service usually behind a risky port, e.g. `22` → `SSH`.
    pub fn risky_port(&self, port: i32) -> Option<&str> {
        u16::try_from(port)
            .ok()
            .and_then(|p| self.risky_ports.get(&p))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_risky_ports_parse_and_include_the_classics() {
        let config = RuleConfig::default();
        for (port, name) in [
            (22, "SSH"),
            (3389, "RDP"),
            (6379, "Redis"),
            (10250, "kubelet API"),
        ] {
            assert_eq!(config.risky_port(port), Some(name));
        }
        assert_eq!(config.risky_port(443), None);
        assert_eq!(config.risky_port(-1), None);
    }
}
