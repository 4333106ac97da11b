//! Neighbourhood models: user/item k-nearest neighbours for ratings (`knn`) and item-item
//! neighbours for implicit ranking (`itemknn`).

pub mod itemknn;
pub mod knn;
