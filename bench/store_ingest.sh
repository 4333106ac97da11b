#!/usr/bin/env bash
# Feedback ingest rate of kindred-store (SQLite, and PostgreSQL when KINDRED_TEST_POSTGRES is set;
# `.ci/start-postgres` starts a local server and prints its URL). Release build.
# Writes bench/out/store-ingest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p kindred-store --bench ingest
