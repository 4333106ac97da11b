//! The body of `POST /v1/experiments` through the server's JSON extractor, then the
//! definition's own checks; a valid definition must give its metric columns and an allocation
//! that assigns users.
#![no_main]

use kindred_fuzz::{api_body, check_error};
use kindred_serving::experiments::definition::ExperimentDefinition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(definition) = api_body::<ExperimentDefinition>(data) else {
        return;
    };
    if let Err(e) = definition.validate() {
        return check_error(&e);
    }
    if let Err(e) = definition.columns() {
        check_error(&e);
    }
    match definition.allocation() {
        Ok(allocation) => {
            for user in ["u1", "u2", "someone else"] {
                let index = allocation.assign_index(user, definition.salt());
                assert!(index < definition.variants.len());
            }
        }
        Err(e) => check_error(&e),
    }
});
