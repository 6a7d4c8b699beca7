//! Detectors for credentials and personal data in plain text. Pure functions: a key
//! and a value in, what was found out — masked, never the value itself.

/// What a value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitive {
    AwsAccessKey,
    PrivateKey,
    GitHubToken,
    GitLabToken,
    SlackToken,
    Jwt,
    /// A random-looking value under a key named like a password, secret or token.
    PasswordLike,
    CardNumber,
    EmailList,
}

impl Sensitive {
    pub fn describe(self) -> &'static str {
        match self {
            Sensitive::AwsAccessKey => "AWS access key",
            Sensitive::PrivateKey => "private key",
            Sensitive::GitHubToken => "GitHub token",
            Sensitive::GitLabToken => "GitLab token",
            Sensitive::SlackToken => "Slack token",
            Sensitive::Jwt => "JSON Web Token",
            Sensitive::PasswordLike => "password or secret value",
            Sensitive::CardNumber => "payment card number",
            Sensitive::EmailList => "list of e-mail addresses",
        }
    }

    /// Credentials, as opposed to personal data.
    pub fn is_credential(self) -> bool {
        !matches!(self, Sensitive::CardNumber | Sensitive::EmailList)
    }
}

/// One detection: what, and the matched text masked (`AKIA…(20 chars)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub kind: Sensitive,
    pub masked: String,
}

pub fn mask(text: &str) -> String {
    let shown: String = text.chars().take(4).collect();
    format!("{shown}…({} chars)", text.chars().count())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| !is_token_char(c))
        .filter(|t| !t.is_empty())
}

fn is_aws_key(token: &str) -> bool {
    token.len() == 20
        && ["AKIA", "ASIA", "ABIA", "ACCA"]
            .iter()
            .any(|p| token.starts_with(p))
        && token
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn prefixed(token: &str, prefix: &str, min_rest: usize) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() >= min_rest
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

fn is_github(token: &str) -> bool {
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
        .iter()
        .any(|p| prefixed(token, p, 36))
        || prefixed(token, "github_pat_", 60)
}

fn is_slack(token: &str) -> bool {
    ["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"]
        .iter()
        .any(|p| prefixed(token, p, 10))
}

fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 10
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// Shannon entropy in bits per character.
pub fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = text.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

const SECRET_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "private_key",
    "privatekey",
    "credential",
    "auth",
];

fn key_is_secret_like(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| key.contains(w))
        // Names of things, not the things: SECRET_NAME, TOKEN_PATH, PASSWORD_FILE.
        && !["name", "path", "file", "ref", "url", "endpoint", "length", "ttl", "expiry"].iter().any(|s| key.ends_with(s))
}

fn looks_like_reference(value: &str) -> bool {
    value.contains("${")
        || value.contains("$(")
        || value.contains("{{")
        || value.starts_with('/')
        || value.starts_with('<')
}

/// Luhn check on the digits of a 13-19 digit card number with a known issuer prefix.
fn is_card_number(digits: &str) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let known = digits.starts_with('4')
        || ["51", "52", "53", "54", "55", "34", "37", "6011", "65"]
            .iter()
            .any(|p| digits.starts_with(p))
        || digits
            .get(..4)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| (2221..=2720).contains(&p));
    if !known {
        return false;
    }
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Digit runs, allowing single spaces or dashes between groups (`4111 1111 1111 1111`).
fn digit_runs(value: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    let mut separator = false;
    for c in value.chars() {
        if c.is_ascii_digit() {
            current.push(c);
            separator = false;
        } else if (c == ' ' || c == '-') && !current.is_empty() && !separator {
            separator = true;
        } else {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            separator = false;
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn emails(value: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for token in value.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '<' | '>' | '[' | ']')
    }) {
        if let Some((user, domain)) = token.split_once('@')
            && !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            seen.insert(token.to_ascii_lowercase());
        }
    }
    seen.len()
}

/// Everything sensitive in one key/value pair.
pub fn detect(key: &str, value: &str) -> Vec<Detection> {
    let mut found: Vec<Detection> = Vec::new();
    fn push(found: &mut Vec<Detection>, kind: Sensitive, text: &str) {
        if !found.iter().any(|d| d.kind == kind) {
            found.push(Detection {
                kind,
                masked: mask(text),
            });
        }
    }
    if value.contains("-----BEGIN") && value.contains("PRIVATE KEY-----") {
        push(
            &mut found,
            Sensitive::PrivateKey,
            "-----BEGIN PRIVATE KEY-----",
        );
    }
    for token in tokens(value) {
        if is_aws_key(token) {
            push(&mut found, Sensitive::AwsAccessKey, token);
        } else if is_github(token) {
            push(&mut found, Sensitive::GitHubToken, token);
        } else if prefixed(token, "glpat-", 20) {
            push(&mut found, Sensitive::GitLabToken, token);
        } else if is_slack(token) {
            push(&mut found, Sensitive::SlackToken, token);
        } else if is_jwt(token) {
            push(&mut found, Sensitive::Jwt, token);
        }
    }
    if value.contains("hooks.slack.com/services/") {
        push(
            &mut found,
            Sensitive::SlackToken,
            "hooks.slack.com/services/",
        );
    }
    let trimmed = value.trim();
    if found.is_empty()
        && key_is_secret_like(key)
        && trimmed.len() >= 8
        && !trimmed.contains(char::is_whitespace)
        && !looks_like_reference(trimmed)
        && entropy(trimmed) >= 2.5
    {
        push(&mut found, Sensitive::PasswordLike, trimmed);
    }
    for run in digit_runs(value) {
        if is_card_number(&run) {
            push(&mut found, Sensitive::CardNumber, &run);
        }
    }
    if emails(value) >= 5 {
        push(&mut found, Sensitive::EmailList, value);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(key: &str, value: &str) -> Vec<Sensitive> {
        detect(key, value).into_iter().map(|d| d.kind).collect()
    }

    #[test]
    fn credentials_are_found_and_masked() {
        assert_eq!(
            kinds("config", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
            [Sensitive::AwsAccessKey]
        );
        assert_eq!(
            detect("x", "AKIAIOSFODNN7EXAMPLE")[0].masked,
            "AKIA…(20 chars)"
        );
        assert_eq!(
            kinds(
                "tls.key",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----"
            ),
            [Sensitive::PrivateKey]
        );
        assert_eq!(
            kinds("GH", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
            [Sensitive::GitHubToken]
        );
        assert_eq!(
            kinds("ci", "token: glpat-AbCdEfGhIjKlMnOpQrSt"),
            [Sensitive::GitLabToken]
        );
        assert_eq!(
            kinds("hook", "https://hooks.slack.com/services/T000/B000/XXXX"),
            [Sensitive::SlackToken]
        );
        assert_eq!(
            kinds(
                "auth",
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
            ),
            [Sensitive::Jwt]
        );
        assert_eq!(
            kinds("DB_PASSWORD", "s3cr3t-Pa55w0rd!"),
            [Sensitive::PasswordLike]
        );
    }

    #[test]
    fn ordinary_values_are_not_flagged() {
        for (key, value) in [
            ("DB_PASSWORD_FILE", "/run/secrets/db-password"),
            ("DB_PASSWORD", "${DB_PASSWORD}"),
            ("TOKEN_TTL", "3600"),
            ("SECRET_NAME", "app-credentials-2024"),
            ("LOG_LEVEL", "info"),
            ("image", "registry.example.com/team/app:1.4.2"),
            ("ORDER_ID", "4111111111111112"),
            ("contact", "team@example.com, ops@example.com"),
        ] {
            assert!(
                detect(key, value).is_empty(),
                "{key}={value}: {:?}",
                detect(key, value)
            );
        }
    }

    #[test]
    fn personal_data() {
        assert_eq!(
            kinds("note", "card 4111 1111 1111 1111 exp 12/29"),
            [Sensitive::CardNumber]
        );
        assert_eq!(
            kinds("note", "5500-0000-0000-0004"),
            [Sensitive::CardNumber]
        );
        assert_eq!(
            kinds("users", "a@x.io,b@x.io,c@x.io,d@x.io,e@x.io"),
            [Sensitive::EmailList]
        );
    }
}
