//! The one queryable store: assets, relations, tags and findings of the cluster and the
//! cloud in an embedded SQLite database, plus the accepted cloud snapshots. Its schema
//! is documented in `docs/store.md`; `posture query` and the operator's query endpoint
//! read it.
//!
//! Writes are whole: a new inventory or a new snapshot replaces the old one in one
//! transaction, so a reader never sees half of either. Reads go through
//! [`ReadOnly`], a connection opened read-only whose authorizer allows nothing but
//! reading: read-only is a property of the connection, not a guess about the SQL text.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use serde_json::Value;

/// Version of the schema below, in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// The schema. Kept in one place: `docs/store.md` documents it and a test checks that
/// every table is documented.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS assets (
    id         TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    namespace  TEXT,
    name       TEXT NOT NULL,
    account    TEXT,
    region     TEXT,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assets_by_kind ON assets(kind, namespace);
CREATE TABLE IF NOT EXISTS relations (
    from_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    to_id   TEXT NOT NULL,
    PRIMARY KEY (from_id, kind, to_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_by_target ON relations(to_id, kind);
CREATE TABLE IF NOT EXISTS tags (
    asset_id TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (asset_id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tag);
CREATE TABLE IF NOT EXISTS findings (
    fingerprint       TEXT PRIMARY KEY,
    rule              TEXT NOT NULL,
    title             TEXT NOT NULL,
    severity          TEXT NOT NULL,
    category          TEXT NOT NULL,
    subject_id        TEXT NOT NULL,
    subject_kind      TEXT NOT NULL,
    subject_namespace TEXT,
    subject_name      TEXT NOT NULL,
    message           TEXT NOT NULL,
    state             TEXT NOT NULL,
    suppressed_by     TEXT,
    policy            TEXT,
    evidence          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_subject ON findings(subject_id);
CREATE INDEX IF NOT EXISTS findings_by_rule ON findings(rule);
CREATE TABLE IF NOT EXISTS snapshots (
    policy       TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    schema       TEXT NOT NULL,
    collected_at TEXT NOT NULL,
    accepted_at  TEXT NOT NULL,
    accounts     TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS not_collected (
    account TEXT NOT NULL,
    region  TEXT,
    section TEXT NOT NULL,
    error   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// The tables of [`SCHEMA`], in order.
pub const TABLES: [&str; 7] = [
    "assets",
    "relations",
    "tags",
    "findings",
    "snapshots",
    "not_collected",
    "meta",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "{path} has store schema version {found}; this posture reads version {SCHEMA_VERSION} (use the posture release that wrote it, or let the operator rebuild it)"
    )]
    Version { path: String, found: i64 },
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the query ran longer than {0:?} and was stopped; narrow it (WHERE, LIMIT)")]
    Timeout(Duration),
}

/// One asset: a Kubernetes object or a cloud resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetRow {
    /// `k8s:Kind/namespace/name` or `aws:<ARN>`.
    pub id: String,
    /// `kubernetes` or `aws`.
    pub provider: &'static str,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub account: Option<String>,
    pub region: Option<String>,
    /// JSON: the object as watched, or the cloud record.
    pub attributes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RelationRow {
    pub from: String,
    pub kind: &'static str,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub fingerprint: String,
    pub rule: String,
    pub title: String,
    pub severity: String,
    pub category: String,
    pub subject_id: String,
    pub subject_kind: String,
    pub subject_namespace: Option<String>,
    pub subject_name: String,
    pub message: String,
    /// `Open` or `Suppressed` (resolved findings leave the store).
    pub state: &'static str,
    pub suppressed_by: Option<String>,
    pub policy: Option<String>,
    /// JSON object of the evidence.
    pub evidence: String,
}

/// A section the collector could not read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotCollectedRow {
    pub account: String,
    pub region: Option<String>,
    pub section: String,
    pub error: String,
}

/// Everything the inventory tables hold, built by the caller from its inventory and
/// evaluation.
#[derive(Debug, Default, Clone)]
pub struct Rows {
    pub assets: Vec<AssetRow>,
    pub relations: Vec<RelationRow>,
    /// (asset id, tag).
    pub tags: Vec<(String, String)>,
    pub findings: Vec<FindingRow>,
    pub not_collected: Vec<NotCollectedRow>,
}

/// Where rows go: the store's transaction, or [`Rows`] in memory.
pub trait RowSink {
    fn asset(&mut self, row: AssetRow) -> Result<(), StoreError>;
    fn relation(&mut self, row: RelationRow) -> Result<(), StoreError>;
    fn tag(&mut self, asset: &str, tag: &str) -> Result<(), StoreError>;
    fn finding(&mut self, row: FindingRow) -> Result<(), StoreError>;
    fn not_collected(&mut self, row: NotCollectedRow) -> Result<(), StoreError>;
}

impl RowSink for Rows {
    fn asset(&mut self, row: AssetRow) -> Result<(), StoreError> {
        self.assets.push(row);
        Ok(())
    }
    fn relation(&mut self, row: RelationRow) -> Result<(), StoreError> {
        self.relations.push(row);
        Ok(())
    }
    fn tag(&mut self, asset: &str, tag: &str) -> Result<(), StoreError> {
        self.tags.push((asset.to_owned(), tag.to_owned()));
        Ok(())
    }
    fn finding(&mut self, row: FindingRow) -> Result<(), StoreError> {
        self.findings.push(row);
        Ok(())
    }
    fn not_collected(&mut self, row: NotCollectedRow) -> Result<(), StoreError> {
        self.not_collected.push(row);
        Ok(())
    }
}

impl Rows {
    /// Writes these rows to a sink (tests, and small inventories).
    pub fn write_to(&self, sink: &mut dyn RowSink) -> Result<(), StoreError> {
        for a in &self.assets {
            sink.asset(a.clone())?;
        }
        for r in &self.relations {
            sink.relation(r.clone())?;
        }
        for (a, t) in &self.tags {
            sink.tag(a, t)?;
        }
        for f in &self.findings {
            sink.finding(f.clone())?;
        }
        for n in &self.not_collected {
            sink.not_collected(n.clone())?;
        }
        Ok(())
    }
}

/// The prepared statements of one inventory transaction.
struct Writer<'t> {
    assets: rusqlite::Statement<'t>,
    relations: rusqlite::Statement<'t>,
    tags: rusqlite::Statement<'t>,
    findings: rusqlite::Statement<'t>,
    not_collected: rusqlite::Statement<'t>,
}

impl RowSink for Writer<'_> {
    fn asset(&mut self, a: AssetRow) -> Result<(), StoreError> {
        self.assets.execute(params![
            a.id,
            a.provider,
            a.kind,
            a.namespace,
            a.name,
            a.account,
            a.region,
            a.attributes
        ])?;
        Ok(())
    }
    fn relation(&mut self, r: RelationRow) -> Result<(), StoreError> {
        self.relations.execute(params![r.from, r.kind, r.to])?;
        Ok(())
    }
    fn tag(&mut self, asset: &str, tag: &str) -> Result<(), StoreError> {
        self.tags.execute(params![asset, tag])?;
        Ok(())
    }
    fn finding(&mut self, f: FindingRow) -> Result<(), StoreError> {
        self.findings.execute(params![
            f.fingerprint,
            f.rule,
            f.title,
            f.severity,
            f.category,
            f.subject_id,
            f.subject_kind,
            f.subject_namespace,
            f.subject_name,
            f.message,
            f.state,
            f.suppressed_by,
            f.policy,
            f.evidence
        ])?;
        Ok(())
    }
    fn not_collected(&mut self, n: NotCollectedRow) -> Result<(), StoreError> {
        self.not_collected
            .execute(params![n.account, n.region, n.section, n.error])?;
        Ok(())
    }
}

/// An accepted cloud snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    /// `namespace/name` of the ScanPolicy that collected it.
    pub policy: String,
    pub provider: String,
    pub schema: String,
    pub collected_at: String,
    pub accepted_at: String,
    /// Account ids.
    pub accounts: Vec<String>,
    /// The snapshot JSON.
    pub body: String,
}

/// The writer: the operator's (or `posture query --snapshot`'s) connection.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens or creates the database, creating the schema when empty.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(15))
            .map_err(open_error)?;
        // WAL: readers (queries) never block the writer, nor the writer them.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_error)?;
        match found {
            0 => {
                conn.execute_batch(SCHEMA).map_err(open_error)?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(open_error)?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::Version {
                    path: path.display().to_string(),
                    found,
                });
            }
        }
        Ok(Self { conn })
    }

    /// Replaces the inventory tables (everything but the snapshots) in one
    /// transaction with what `fill` writes. Rows are written as they are produced, so
    /// a large inventory is never held twice in memory.
    pub fn replace_inventory(
        &mut self,
        updated_at: &str,
        fill: impl FnOnce(&mut dyn RowSink) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for table in ["assets", "relations", "tags", "findings", "not_collected"] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        {
            let mut writer = Writer {
                assets: tx.prepare(
                    "INSERT OR REPLACE INTO assets (id, provider, kind, namespace, name, account, region, attributes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?,
                relations: tx.prepare(
                    "INSERT OR IGNORE INTO relations (from_id, kind, to_id) VALUES (?1, ?2, ?3)",
                )?,
                tags: tx.prepare("INSERT OR IGNORE INTO tags (asset_id, tag) VALUES (?1, ?2)")?,
                findings: tx.prepare(
                    "INSERT OR REPLACE INTO findings (fingerprint, rule, title, severity, category, subject_id,
                       subject_kind, subject_namespace, subject_name, message, state, suppressed_by, policy, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?,
                not_collected: tx.prepare(
                    "INSERT INTO not_collected (account, region, section, error) VALUES (?1, ?2, ?3, ?4)",
                )?,
            };
            fill(&mut writer)?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('inventory_updated_at', ?1)",
                params![updated_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores an accepted snapshot, replacing the policy's previous one, in one
    /// transaction: the previous one stays until this one is committed whole.
    pub fn save_snapshot(&mut self, record: &SnapshotRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (policy, provider, schema, collected_at, accepted_at, accounts, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                record.policy,
                record.provider,
                record.schema,
                record.collected_at,
                record.accepted_at,
                serde_json::to_string(&record.accounts).unwrap_or_default(),
                record.body
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the snapshot of a deleted ScanPolicy.
    pub fn delete_snapshot(&mut self, policy: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM snapshots WHERE policy = ?1", params![policy])?;
        Ok(())
    }

    /// Every accepted snapshot (read at start-up: a restart keeps the cloud data).
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT policy, provider, schema, collected_at, accepted_at, accounts, body FROM snapshots ORDER BY policy",
        )?;
        let rows = stmt.query_map([], |r| {
            let accounts: String = r.get(5)?;
            Ok(SnapshotRecord {
                policy: r.get(0)?,
                provider: r.get(1)?,
                schema: r.get(2)?,
                collected_at: r.get(3)?,
                accepted_at: r.get(4)?,
                accounts: serde_json::from_str(&accounts).unwrap_or_default(),
                body: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Limits of one query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows matched than `max_rows`.
    pub truncated: bool,
}

/// A connection that can only read.
pub struct ReadOnly {
    conn: Connection,
}

impl ReadOnly {
    /// Opens a database file read-only. A copy of the operator's file without its WAL
    /// companions opens as immutable.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if !path.is_file() {
            return Err(open_error(rusqlite::Error::InvalidPath(path.to_owned())));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let usable = |c: Connection| -> rusqlite::Result<Connection> {
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
            Ok(c)
        };
        let conn = match Connection::open_with_flags(path, flags).and_then(usable) {
            Ok(conn) => conn,
            Err(_) => {
                let uri = format!("file:{}?immutable=1", path.display());
                Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .map_err(open_error)?
            }
        };
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_error)?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Version {
                path: path.display().to_string(),
                found,
            });
        }
        conn.authorizer(Some(read_only_authorizer));
        Ok(Self { conn })
    }

    /// Runs one statement and returns at most `max_rows` rows.
    pub fn query(&self, sql: &str, limits: Limits) -> Result<QueryResult, StoreError> {
        let deadline = Instant::now() + limits.timeout;
        self.conn
            .progress_handler(10_000, Some(move || Instant::now() > deadline));
        let result = self.run(sql, limits);
        self.conn.progress_handler(0, None::<fn() -> bool>);
        match result {
            Err(StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Err(StoreError::Timeout(limits.timeout))
            }
            other => other,
        }
    }

    fn run(&self, sql: &str, limits: Limits) -> Result<QueryResult, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows.next()? {
            if out.len() == limits.max_rows {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                use rusqlite::types::ValueRef;
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(x) => Value::from(x),
                    ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::from(format!("<{} bytes>", b.len())),
                });
            }
            out.push(values);
        }
        Ok(QueryResult {
            columns,
            rows: out,
            truncated,
        })
    }
}

/// Reading only: SELECT, reading columns, functions, recursive CTEs, and the pragmas
/// that describe the schema. Everything else (writes, ATTACH, pragmas that change
/// settings, transactions) is refused by SQLite itself before the statement runs.
fn read_only_authorizer(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            // load_extension would run native code; the build omits it, and this says so twice.
            if function_name.eq_ignore_ascii_case("load_extension") {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value: None,
        } if matches!(
            pragma_name.to_ascii_lowercase().as_str(),
            "table_info" | "table_xinfo" | "table_list" | "index_list" | "index_info"
        ) =>
        {
            Authorization::Allow
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if matches!(
            pragma_name.to_ascii_lowercase().as_str(),
            "table_info" | "table_xinfo" | "index_list" | "index_info"
        ) =>
        {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Rows {
        Rows {
            assets: vec![
                AssetRow {
                    id: "k8s:Deployment/shop/web".into(),
                    provider: "kubernetes",
                    kind: "Deployment".into(),
                    namespace: Some("shop".into()),
                    name: "web".into(),
                    account: None,
                    region: None,
                    attributes: r#"{"metadata":{"name":"web","labels":{"app":"web"}}}"#.into(),
                },
                AssetRow {
                    id: "aws:arn:aws:iam::123456789012:role/admin".into(),
                    provider: "aws",
                    kind: "IamRole".into(),
                    namespace: None,
                    name: "admin".into(),
                    account: Some("123456789012".into()),
                    region: None,
                    attributes: "{}".into(),
                },
            ],
            relations: vec![RelationRow {
                from: "k8s:Deployment/shop/web".into(),
                kind: "runs-as",
                to: "k8s:ServiceAccount/shop/web".into(),
            }],
            tags: vec![("k8s:Deployment/shop/web".into(), "isPublic".into())],
            findings: vec![],
            not_collected: vec![],
        }
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("posture-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("posture.db")
    }

    #[test]
    fn writes_whole_and_reads_back() {
        let path = temp_db("roundtrip");
        let mut store = Store::open(&path).unwrap();
        store
            .replace_inventory("now", |s| rows().write_to(s))
            .unwrap();
        let reader = ReadOnly::open(&path).unwrap();
        let result = reader
            .query(
                "SELECT a.name, json_extract(a.attributes, '$.metadata.labels.app') AS app, t.tag
                 FROM assets a JOIN tags t ON t.asset_id = a.id",
                Limits::default(),
            )
            .unwrap();
        assert_eq!(result.columns, vec!["name", "app", "tag"]);
        assert_eq!(
            result.rows,
            vec![vec![
                Value::from("web"),
                Value::from("web"),
                Value::from("isPublic")
            ]]
        );
        // A second write replaces, never duplicates.
        store
            .replace_inventory("later", |s| rows().write_to(s))
            .unwrap();
        let count = reader
            .query("SELECT count(*) FROM assets", Limits::default())
            .unwrap();
        assert_eq!(count.rows, vec![vec![Value::from(2)]]);
    }

    #[test]
    fn the_connection_refuses_every_write() {
        let path = temp_db("readonly");
        Store::open(&path)
            .unwrap()
            .replace_inventory("now", |s| rows().write_to(s))
            .unwrap();
        let reader = ReadOnly::open(&path).unwrap();
        for sql in [
            "DELETE FROM assets",
            "UPDATE assets SET name = 'x'",
            "INSERT INTO tags VALUES ('a', 'b')",
            "DROP TABLE assets",
            "CREATE TABLE x (y)",
            "ATTACH DATABASE '/tmp/posture-attack.db' AS other",
            "PRAGMA query_only = OFF",
            "PRAGMA journal_mode = DELETE",
            "WITH x AS (SELECT 1) DELETE FROM assets",
            "BEGIN IMMEDIATE",
            "SELECT load_extension('/tmp/x.so')",
        ] {
            let error = reader.query(sql, Limits::default());
            assert!(error.is_err(), "{sql} must be refused");
        }
        let count = reader
            .query("SELECT count(*) FROM assets", Limits::default())
            .unwrap();
        assert_eq!(count.rows, vec![vec![Value::from(2)]], "nothing changed");
        assert!(
            reader
                .query("PRAGMA table_info(assets)", Limits::default())
                .is_ok()
        );
    }

    #[test]
    fn limits_rows_and_time() {
        let path = temp_db("limits");
        Store::open(&path)
            .unwrap()
            .replace_inventory("now", |s| rows().write_to(s))
            .unwrap();
        let reader = ReadOnly::open(&path).unwrap();
        let limited = reader
            .query(
                "SELECT id FROM assets",
                Limits {
                    max_rows: 1,
                    timeout: Duration::from_secs(5),
                },
            )
            .unwrap();
        assert_eq!(limited.rows.len(), 1);
        assert!(limited.truncated);
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let error = reader
            .query(
                endless,
                Limits {
                    max_rows: 10,
                    timeout: Duration::from_millis(200),
                },
            )
            .unwrap_err();
        assert!(matches!(error, StoreError::Timeout(_)), "{error}");
    }

    #[test]
    fn snapshots_replace_per_policy_and_survive_reopening() {
        let path = temp_db("snapshots");
        let record = |collected: &str| SnapshotRecord {
            policy: "posture-system/default".into(),
            provider: "aws".into(),
            schema: "posture.dev/aws-snapshot/v1".into(),
            collected_at: collected.into(),
            accepted_at: collected.into(),
            accounts: vec!["123456789012".into()],
            body: "{}".into(),
        };
        let mut store = Store::open(&path).unwrap();
        store.save_snapshot(&record("1")).unwrap();
        store.save_snapshot(&record("2")).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.snapshots().unwrap(), vec![record("2")]);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_named() {
        let path = temp_db("garbage");
        std::fs::write(&path, b"not a database at all, just text").unwrap();
        let error = match Store::open(&path) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("opened garbage"),
        };
        assert!(error.contains("posture.db"), "{error}");
        assert!(ReadOnly::open(&path.with_extension("missing")).is_err());
    }
}
