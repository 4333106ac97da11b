//! The column layout every export writes, in its own file because both the export dispatcher
//! and the Parquet writer (an optional feature) follow it.

/// The columns every export writes, in order.
pub const EXPORT_COLUMNS: [&str; 6] = ["user", "item", "rating", "weight", "event", "timestamp"];
