//! A whole saved model: `manifest.json`, a NUL byte, then `model.safetensors`, loaded by the
//! family the manifest names (`ModelRegistry::load_saved`). A model that loads must answer a
//! list, an anonymous list and a prediction without panicking.
#![no_main]

use kindred_fuzz::{check_error, source};
use kindred_models::model::{AllItems, UserQuery};
use kindred_models::persist::TensorReader;
use kindred_models::{Manifest, ModelRegistry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (manifest, tensors) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let manifest = match Manifest::from_json(manifest, source().join("manifest.json")) {
        Ok(m) => m,
        Err(e) => return check_error(&e),
    };
    let tensors =
        match TensorReader::from_bytes(source().join("model.safetensors"), tensors.to_vec()) {
            Ok(t) => t,
            Err(e) => return check_error(&e),
        };
    let model = match ModelRegistry::global().load_saved(source(), &manifest, &tensors) {
        Ok(m) => m,
        Err(e) => return check_error(&e),
    };
    let n_users = model.fitted().users.len();
    let n_items = model.fitted().items.len();
    if n_users > 0 {
        model.recommend(&UserQuery::known(0), 5, &AllItems);
    }
    if n_items > 0 {
        model.recommend(&UserQuery::anonymous(&[0]), 5, &AllItems);
        if n_users > 0 {
            model.predict(0, 0);
        }
    }
});
