//! Neural models: neural collaborative filtering (GMF + MLP).

pub mod ncf;
