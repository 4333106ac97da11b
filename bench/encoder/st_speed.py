"""Seconds sentence-transformers takes to load a model and encode a feature file's titles (the
peer of `kindred embed` in embed_speed.sh); prints the seconds only.

usage: python st_speed.py MODEL_DIR titles.jsonl
"""

import json
import sys
import time

start = time.perf_counter()
from sentence_transformers import SentenceTransformer  # noqa: E402  (the import is timed too)

model_dir, path = sys.argv[1:3]
with open(path, encoding="utf-8") as f:
    titles = [json.loads(line)["title"] for line in f]
model = SentenceTransformer(model_dir, device="cpu")
vectors = model.encode(titles, batch_size=32, convert_to_numpy=True)
assert vectors.shape == (len(titles), model.get_sentence_embedding_dimension())
print(f"{time.perf_counter() - start:.2f}")
