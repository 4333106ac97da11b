//! Adding a model is one folder and one line: the toy family in `toy/` is registered with a
//! single `register` call, then built from a spec, fitted, listed, saved, loaded back and tuned,
//! all through the registry.

mod toy;

use kindred_core::{FitContext, Interaction, InteractionsBuilder, TrainSet};
use kindred_models::space::Value;
use kindred_models::{load_model, ModelRegistry, UserQuery};

fn tiny() -> TrainSet {
    let mut b = InteractionsBuilder::new();
    // Item a: 3 interactions, b: 1, c: 2.
    for (u, i) in [
        ("u1", "a"),
        ("u2", "a"),
        ("u3", "a"),
        ("u1", "b"),
        ("u2", "c"),
        ("u3", "c"),
    ] {
        b.push(Interaction::rating(u, i, 1.0, None));
    }
    TrainSet::new(b.build())
}

#[test]
fn a_family_registered_with_one_line_works_through_the_registry() {
    let mut registry = ModelRegistry::builtin();
    registry.register(toy::ToyFamily).unwrap();

    // Listed, with its typed default.
    let catalog = registry.catalog();
    let info = catalog
        .iter()
        .find(|m| m.name == "toy")
        .expect("toy is listed");
    assert_eq!(info.params.len(), 1);
    assert_eq!(info.params[0].name, "shrink");
    assert_eq!(info.params[0].default_text(), "1");
    assert_eq!(catalog.len(), ModelRegistry::builtin().catalog().len() + 1);

    // Built from a spec; bad parameters are rejected as for any family.
    let algorithm = registry.build("toy:shrink=2").unwrap();
    assert_eq!(algorithm.name(), "toy");
    assert_eq!(algorithm.params(), serde_json::json!({ "shrink": 2.0 }));
    assert!(registry.build("toy:colour=red").is_err());
    let err = registry.build("toyz").err().unwrap().to_string();
    assert!(err.contains("unknown model `toyz`"), "{err}");
    assert!(
        err.contains("hybrid, toy, presets: movielens-rating"),
        "{err}"
    );

    // Fitted: count / (count + 2) for a (3), b (1), c (2).
    let data = tiny();
    let model = algorithm.fit(&data, &FitContext::default()).unwrap();
    let index = |id: &str| data.data.item_ids().get(id).unwrap();
    let mut scores = vec![0f32; 3];
    model.score_all(&UserQuery::anonymous(&[]), &mut scores);
    assert_eq!(scores[index("a") as usize], 0.6);
    assert_eq!(scores[index("b") as usize], 1.0 / 3.0);
    assert_eq!(scores[index("c") as usize], 0.5);

    // Saved and loaded back by the registry that knows it; the built-in one does not.
    let dir = std::env::temp_dir().join(format!("kindred-toy-family-{}", std::process::id()));
    model.save(&dir).unwrap();
    let loaded = registry.load(&dir);
    let builtin = load_model(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = loaded.unwrap();
    assert_eq!(loaded.name(), "toy");
    assert_eq!(loaded.params(), model.params());
    let mut again = vec![0f32; 3];
    loaded.score_all(&UserQuery::anonymous(&[]), &mut again);
    assert_eq!(again, scores);
    let err = builtin.err().unwrap().to_string();
    assert!(err.contains("unknown algorithm `toy`"), "{err}");

    // Its search space is read through the registry and its points build.
    assert!(registry.families_with_space().contains(&"toy"));
    let space = registry.space("toy").unwrap();
    assert_eq!(space.defaults(), vec![Value::Float(1.0)]);
    let spec = space.spec(&space.defaults(), 1.0);
    assert_eq!(spec, "toy:shrink=1");
    assert_eq!(registry.build(&spec).unwrap().name(), "toy");

    // A name can be registered once.
    assert!(registry.register(toy::ToyFamily).is_err());
}
