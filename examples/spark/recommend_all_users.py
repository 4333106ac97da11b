"""Every user's top-K from a saved Kindred model, scored inside Spark.

The model directory (written by `kindred train --out DIR` or `kindred.Model.save(DIR)`) is
broadcast as a path: each Python worker loads it once with `kindred.Model.load` and keeps it in a
module-level dict, so the factors never travel through Spark. The model's user ids become a
DataFrame, spread over partitions, and `mapInPandas` asks `model.recommend(users, k=K)` for one
Arrow batch of users at a time. The lists (user, item, rank, score) are written as CSV, one
part file per partition, the same rows `kindred recommend --model DIR --all-users --k K` prints
(without its title column).

    pip install pyspark pandas pyarrow ./python      # Java 17 on the PATH or in JAVA_HOME
    python examples/spark/recommend_all_users.py MODEL_DIR OUT_DIR [--k 10] [--master local[2]]

The master defaults to $SPARK_MASTER, else local[2]. On a cluster, MODEL_DIR must be readable at
the same path on every executor (a shared filesystem) and every executor needs `kindred`.
"""

import argparse
import os
import sys
import time

from pyspark.sql import SparkSession

SCHEMA = "user string, item string, rank long, score float"

# Filled once per Python worker: model directory -> kindred.Model.
_MODELS = {}


def _model(model_dir):
    if model_dir not in _MODELS:
        # Spark runs one task per core: one Rust thread per task, not a full pool in each.
        os.environ.setdefault("RAYON_NUM_THREADS", "1")
        import kindred

        _MODELS[model_dir] = kindred.Model.load(model_dir)
    return _MODELS[model_dir]


def recommend_partition(model_dir, k):
    """The function mapInPandas runs: pandas batches of users in, their top-k rows out."""

    def run(batches):
        model = _model(model_dir.value)
        for batch in batches:
            if len(batch) == 0:
                continue
            lists = model.recommend(batch["user"].tolist(), k=k)
            # Ids come back as ints when the model was fitted from int ids: one string schema.
            lists["user"] = lists["user"].astype(str)
            lists["item"] = lists["item"].astype(str)
            yield lists

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="saved Kindred model directory")
    parser.add_argument("out", help="output directory (CSV part files, overwritten)")
    parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--master", default=os.environ.get("SPARK_MASTER", "local[2]"))
    parser.add_argument("--partitions", type=int, help="user partitions (default: the cores)")
    args = parser.parse_args()
    model_dir = os.path.abspath(args.model_dir)
    if args.master.startswith("local"):
        # Local workers run this interpreter (the one that has kindred installed).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    started = time.perf_counter()
    spark = SparkSession.builder.master(args.master).appName("kindred-recommend").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    session_up = time.perf_counter()

    import kindred

    users = [str(u) for u in kindred.Model.load(model_dir).user_ids]
    partitions = args.partitions or spark.sparkContext.defaultParallelism
    model_path = spark.sparkContext.broadcast(model_dir)
    (
        spark.createDataFrame([(u,) for u in users], "user string")
        .repartition(partitions)
        .mapInPandas(recommend_partition(model_path, args.k), schema=SCHEMA)
        .write.mode("overwrite")
        .option("header", True)
        .csv(args.out)
    )
    done = time.perf_counter()
    print(f"users: {len(users)}, k: {args.k}, partitions: {partitions}, master: {args.master}")
    print(f"Spark session start: {session_up - started:.3f} s")
    print(f"Spark job wall time: {done - started:.3f} s (session start to written output)")
    spark.stop()


if __name__ == "__main__":
    main()
