//! Sequence models: each user's items in the order they happened, read by a network that
//! predicts the next one.

pub mod catalog_softmax;
pub mod fused_ops;
pub mod sasrec;
pub mod sasrec_net;
pub mod sequences;

/// Helpers shared by the gradient tests.
#[cfg(test)]
pub(crate) mod test_support {
    use candle_core::backprop::GradStore;
    use candle_core::Var;

    /// The gradient of `var` in `grads`, flattened.
    pub fn gradient_values(grads: &GradStore, var: &Var) -> Vec<f32> {
        grads
            .get(var.as_tensor())
            .expect("a gradient for the variable")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("a flat f32 gradient")
    }
}
