//! Reference points every other model must beat: seeded random scores and popularity.

pub mod popularity;
pub mod random;
