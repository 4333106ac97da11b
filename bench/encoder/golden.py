"""Golden vectors for the sentence-encoder test (crates/kindred-neural/tests/golden/).

Encodes a few sentences with the reference implementation, sentence-transformers, from a model
directory on disk (no download), and writes the token ids and vectors as JSON. Run once per
model by bench/encoder/golden.sh, which installs sentence-transformers into a virtualenv.

usage: python golden.py MODEL_DIR PACKAGE OUT.json
"""

import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "Toy Story (1995)",
    "GoldenEye (1995)",
    "Star Wars: Episode IV - A New Hope (1977)",
    "A cowboy doll is profoundly threatened and jealous when a new spaceman figure supplants "
    "him as top toy in a boy's room.",
    "Amélie (Le fabuleux destin d'Amélie Poulain) (2001)",
    "  padded with spaces, UPPER and lower case, digits 12345 and punctuation!?  ",
    "",
    # Longer than max_seq_length (256 tokens): the reference cuts it.
    " ".join(["recommendation engines rank items for users from their history"] * 40),
]


def main() -> None:
    model_dir, package, out = sys.argv[1:4]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, convert_to_numpy=True, batch_size=4)
    features = model.tokenize([s.strip() for s in SENTENCES])
    ids = []
    for row, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist()):
        ids.append([t for t, m in zip(row, mask) if m == 1])
    doc = {
        "what": "sentence-transformers vectors for kindred-neural's encoder test",
        "model_package": package,
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "token_ids": ids,
        "vectors": [[float(x) for x in v] for v in vectors],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
