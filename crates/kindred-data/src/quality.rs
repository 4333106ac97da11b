//! The data-quality report behind `kindred stats` (in progress).
