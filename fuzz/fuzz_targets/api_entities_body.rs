//! The bodies of `PUT /v1/users/{id}`, `POST /v1/users`, `PUT /v1/items/{id}` and
//! `POST /v1/items` (the first byte picks which) through the server's JSON extractor; batches
//! then go through the handler's id and feature-kind checks.
#![no_main]

use std::collections::BTreeMap;

use kindred_fuzz::{api_body, check_api_error};
use kindred_server::routes::entities::{items_of_batch, users_of_batch, ItemBody, UserBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let stored = BTreeMap::new();
    let checked = match which % 4 {
        0 => api_body::<UserBody>(body).map(|_| ()),
        1 => api_body::<Vec<UserBody>>(body).and_then(|b| users_of_batch(b, &stored).map(|_| ())),
        2 => api_body::<ItemBody>(body).map(|_| ()),
        _ => api_body::<Vec<ItemBody>>(body).and_then(|b| items_of_batch(b, &stored).map(|_| ())),
    };
    if let Err(e) = checked {
        check_api_error(&e);
    }
});
