//! Versioned schema migrations for both backends.
//!
//! Each migration is applied once, in order, inside a transaction that also records its version
//! in `schema_version`; opening a store applies whatever is missing, so opening is idempotent.
//! A database whose version is newer than this build knows is refused rather than misread.
//! Never edit a released migration: add the next one (to both lists, with the same version).

/// `(version, SQL)` for SQLite.
pub(crate) const SQLITE: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE users (
        id TEXT PRIMARY KEY NOT NULL,
        features TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE items (
        id TEXT PRIMARY KEY NOT NULL,
        features TEXT NOT NULL DEFAULT '{}',
        categories TEXT NOT NULL DEFAULT '[]',
        timestamp INTEGER,
        hidden INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE feedback (
        seq INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        value REAL,
        ts INTEGER NOT NULL,
        event_id TEXT UNIQUE
    );
    CREATE INDEX feedback_by_ts ON feedback (ts);
    CREATE INDEX feedback_by_user ON feedback (user_id, ts);
    CREATE TABLE impressions (
        seq INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        slot INTEGER NOT NULL,
        propensity REAL,
        policy TEXT NOT NULL,
        ts INTEGER NOT NULL
    );
    CREATE INDEX impressions_by_user_item ON impressions (user_id, item_id);
    CREATE TABLE models (
        version TEXT PRIMARY KEY NOT NULL,
        algorithm TEXT NOT NULL,
        params TEXT NOT NULL,
        metrics TEXT NOT NULL,
        artifact TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        live INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX models_one_live ON models (live) WHERE live = 1;
    CREATE TABLE model_activations (
        seq INTEGER PRIMARY KEY,
        version TEXT NOT NULL REFERENCES models (version)
    );",
    ),
    (
        2,
        "CREATE TABLE experiments (
            name TEXT PRIMARY KEY NOT NULL,
            definition TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft',
            created_at INTEGER NOT NULL,
            started_at INTEGER,
            stopped_at INTEGER
        );
        CREATE TABLE exposures (
            seq INTEGER PRIMARY KEY,
            experiment TEXT NOT NULL,
            variant TEXT NOT NULL,
            user_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            ts INTEGER NOT NULL
        );
        CREATE INDEX exposures_by_experiment_user ON exposures (experiment, user_id);
        CREATE INDEX impressions_by_request ON impressions (request_id);",
    ),
    (
        3,
        "CREATE TABLE erasures (
            kind TEXT NOT NULL,
            id_hash TEXT NOT NULL,
            erased_at BIGINT NOT NULL,
            PRIMARY KEY (kind, id_hash)
        );",
    ),
    (
        4,
        "CREATE TABLE bandit_states (
            policy TEXT PRIMARY KEY NOT NULL,
            state TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        );",
    ),
    (
        5,
        // One row per shown list instead of one per item (see `ImpressionList`). Old rows are
        // grouped by request into lists; propensities are printed with 17 significant digits
        // (`%!` lifts SQLite's default of 16) so that they read back exactly.
        "CREATE TABLE impression_lists (
            seq INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            policy TEXT NOT NULL,
            ts INTEGER NOT NULL,
            experiment TEXT,
            n_items INTEGER NOT NULL,
            items TEXT NOT NULL
        );
        INSERT INTO impression_lists (request_id, user_id, policy, ts, experiment, n_items, items)
        SELECT i.request_id, i.user_id, i.policy, MIN(i.ts), MIN(e.experiment), COUNT(*),
               '[' || group_concat(
                   '[' || json_quote(i.item_id) || ',' || i.slot || ','
                       || CASE WHEN i.propensity IS NULL THEN 'null'
                               ELSE printf('%!.17g', i.propensity) END || ']',
                   ',' ORDER BY i.seq) || ']'
        FROM impressions i
        LEFT JOIN (SELECT request_id, MIN(experiment) AS experiment FROM exposures
                   GROUP BY request_id) e ON e.request_id = i.request_id
        GROUP BY i.request_id, i.user_id, i.policy
        ORDER BY MIN(i.seq);
        DROP TABLE impressions;
        CREATE INDEX impression_lists_by_user ON impression_lists (user_id);
        CREATE INDEX impression_lists_by_experiment ON impression_lists (experiment)
            WHERE experiment IS NOT NULL;",
    ),
];

/// `(version, SQL)` for PostgreSQL; the same tables as [`SQLITE`] with native types. Kept in
/// builds without the backend so that the test pinning both lists in step always runs.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const POSTGRES: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        features JSONB NOT NULL DEFAULT '{}'
    );
    CREATE TABLE items (
        id TEXT PRIMARY KEY,
        features JSONB NOT NULL DEFAULT '{}',
        categories JSONB NOT NULL DEFAULT '[]',
        timestamp BIGINT,
        hidden BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE TABLE feedback (
        seq BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        value REAL,
        ts BIGINT NOT NULL,
        event_id TEXT UNIQUE
    );
    CREATE INDEX feedback_by_ts ON feedback (ts);
    CREATE INDEX feedback_by_user ON feedback (user_id, ts);
    CREATE TABLE impressions (
        seq BIGSERIAL PRIMARY KEY,
        request_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        slot BIGINT NOT NULL,
        propensity DOUBLE PRECISION,
        policy TEXT NOT NULL,
        ts BIGINT NOT NULL
    );
    CREATE INDEX impressions_by_user_item ON impressions (user_id, item_id);
    CREATE TABLE models (
        version TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        params JSONB NOT NULL,
        metrics JSONB NOT NULL,
        artifact TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        live BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE UNIQUE INDEX models_one_live ON models (live) WHERE live;
    CREATE TABLE model_activations (
        seq BIGSERIAL PRIMARY KEY,
        version TEXT NOT NULL REFERENCES models (version)
    );",
    ),
    (
        2,
        "CREATE TABLE experiments (
            name TEXT PRIMARY KEY,
            definition JSONB NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft',
            created_at BIGINT NOT NULL,
            started_at BIGINT,
            stopped_at BIGINT
        );
        CREATE TABLE exposures (
            seq BIGSERIAL PRIMARY KEY,
            experiment TEXT NOT NULL,
            variant TEXT NOT NULL,
            user_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            ts BIGINT NOT NULL
        );
        CREATE INDEX exposures_by_experiment_user ON exposures (experiment, user_id);
        CREATE INDEX impressions_by_request ON impressions (request_id);",
    ),
    (
        3,
        "CREATE TABLE erasures (
            kind TEXT NOT NULL,
            id_hash TEXT NOT NULL,
            erased_at BIGINT NOT NULL,
            PRIMARY KEY (kind, id_hash)
        );",
    ),
    (
        4,
        "CREATE TABLE bandit_states (
            policy TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        );",
    ),
    (
        5,
        "CREATE TABLE impression_lists (
            seq BIGSERIAL PRIMARY KEY,
            request_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            policy TEXT NOT NULL,
            ts BIGINT NOT NULL,
            experiment TEXT,
            n_items BIGINT NOT NULL,
            items TEXT NOT NULL
        );
        INSERT INTO impression_lists (request_id, user_id, policy, ts, experiment, n_items, items)
        SELECT i.request_id, i.user_id, i.policy, MIN(i.ts), MIN(e.experiment), COUNT(*),
               json_agg(json_build_array(i.item_id, i.slot, i.propensity) ORDER BY i.seq)::text
        FROM impressions i
        LEFT JOIN (SELECT request_id, MIN(experiment) AS experiment FROM exposures
                   GROUP BY request_id) e ON e.request_id = i.request_id
        GROUP BY i.request_id, i.user_id, i.policy
        ORDER BY MIN(i.seq);
        DROP TABLE impressions;
        CREATE INDEX impression_lists_by_user ON impression_lists (user_id);
        CREATE INDEX impression_lists_by_experiment ON impression_lists (experiment)
            WHERE experiment IS NOT NULL;",
    ),
];

/// The schema version this build creates and understands.
pub fn latest_version() -> i64 {
    SQLITE.last().map_or(0, |m| m.0)
}

/// Creates the version table when missing (the same SQL works on both backends).
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// The error for a database written by a newer Kindred.
pub(crate) fn too_new(found: i64, known: i64) -> String {
    format!("database schema version {found} is newer than this build of kindred knows ({known}); upgrade kindred")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_versions_in_order() {
        let versions = |m: &[(i64, &str)]| m.iter().map(|(v, _)| *v).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        let v = versions(SQLITE);
        assert!(v.windows(2).all(|w| w[1] == w[0] + 1) && v[0] == 1);
    }
}
