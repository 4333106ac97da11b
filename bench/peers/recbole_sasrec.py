#!/usr/bin/env python3
"""RecBole's SASRec on Kindred's own leave-one-out split, as a peer for Kindred's `sasrec`.

Run by bench/sequence/recbole_sasrec.sh, with the venv that bench/peers/setup_recbole.sh makes. Two steps:

  convert SPLIT_DIR OUT_DIR NAME   turns `kindred split --protocol loo` output (fold0.train.csv, fold0.test.csv)
                                   into RecBole's atomic file OUT_DIR/NAME/NAME.inter
  train OUT_DIR NAME SPLIT_DIR --work DIR --out FILE
                                   trains and tests SASRec on it and writes the results as JSON

Why the data looks the way it does:
- Kindred's `loo` holds out each user's latest interaction, timestamp ties broken by source row (the row read
  last is latest). RecBole's own leave-one-out ('LS' split, order 'TO') sorts by timestamp and would break such
  ties its own way, so the timestamp written for RecBole is each interaction's rank in Kindred's order for that
  user: the training rows by (timestamp, file row), then the test row last. RecBole's test item is then
  exactly Kindred's test item; `train` checks this against fold0.test.csv and stops if it is not so.
- RecBole also holds out the second-latest interaction of every user as a validation item for its early
  stopping. For Kindred that item is training data, so RecBole trains on one item per user fewer. Kindred's
  sasrec likewise holds out the latest training item of some users for its own early stopping.
- RecBole's full-ranking evaluation does not exclude the items a user has already seen when the model is
  sequential; Kindred's evaluation excludes each user's other items. So `train` masks them here: for the test
  item every earlier item of the user (RecBole's train and validation items), for the validation item every
  item before it. Without this RecBole's numbers would be lower for a reason that is not the model.
- With one test item per user RecBole's NDCG@10 is 1/log2(rank+1) when the item is in the top 10, else 0 --
  the same definition as Kindred's ndcg@10 -- and its Recall@10 is the hit rate, Kindred's recall@10 / hit@10.
  Both are averaged over all users, so the numbers compare directly. (Checked once by hand: recomputing the
  test metrics from the saved model, masking with Kindred's fold0.train.csv, gave the same numbers.)
- RecBole's SASRec trains on every prefix of a user's training sequence as its own example, with the loss on
  the prefix's next item only; Kindred's sasrec, like the original SASRec, puts a loss on every position of
  a user's sequence at once. Both see each training target once per epoch, but a RecBole epoch costs about
  (mean sequence length) times more compute, so compare training wall time, not epochs.

Settings are RecBole's SASRec defaults (2 layers, 2 heads, hidden size 64, inner size 256, dropout 0.5/0.5,
full-softmax CE loss, Adam lr 0.001, batch 2048) with the history length set to 200, early stopping on
validation NDCG@10 with patience 10. The batch is 512 rather than RecBole's 2048 because RecBole's attention
keeps batch x heads x 200 x 200 tensors: at 2048 the process peaked at 12 GB on MovieLens 100K, at 512 at 5 GB
(9 GB on MovieLens 1M, whose augmented sequences take about 4 GB more).
Environment: EPOCHS (default 200), THREADS (default 1), SEED (2020), BATCH (512), MAX_LEN (200),
RECBOLE_ARGS (extra `key=value` RecBole settings, values read as YAML, e.g. "n_heads=1 hidden_dropout_prob=0.2"),
MAX_BATCHES (train only that many batches per epoch: a quick check of the whole pipeline, not a benchmark),
TIME_BATCHES (only time that many training batches of the first epoch, to estimate an epoch's time; no evaluation),
TIME_BUDGET_S (start another epoch only while the time spent training and validating plus the last epoch's time
fits in it: Kindred's sasrec and RecBole compared at the same training time; the first epoch always runs).
"""
import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict

# RecBole's checkpoints hold its config object; torch 2.6 and later refuse such pickles by default.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def read_split(path):
    """Rows of a Kindred split CSV as (user, item, timestamp) in file order."""
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        return [(r["user"], r["item"], int(r["timestamp"])) for r in rows]


def convert(args):
    train = read_split(os.path.join(args.split_dir, "fold0.train.csv"))
    test = read_split(os.path.join(args.split_dir, "fold0.test.csv"))
    per_user = defaultdict(list)
    for row, (user, item, ts) in enumerate(train):
        per_user[user].append((ts, row, item))
    test_of = {}
    for user, item, ts in test:
        if user in test_of:
            sys.exit(f"user {user} has two test rows: not a leave-one-out split")
        test_of[user] = (ts, item)
    out = os.path.join(args.out_dir, args.name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{args.name}.inter")
    short = 0
    with open(path, "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, rows in per_user.items():
            rows.sort()  # by timestamp, then file row: Kindred's order
            items = [item for _, _, item in rows]
            if user in test_of:
                ts, item = test_of[user]
                if rows and ts < rows[-1][0]:
                    sys.exit(f"user {user}: test row is older than a training row")
                items.append(item)
            if len(set(items)) != len(items):
                # The history masking in `train` assumes each user rates an item once, as in MovieLens.
                sys.exit(f"user {user} has an item twice")
            if len(items) < 3:
                short += 1
            for rank, item in enumerate(items):
                f.write(f"{user}\t{item}\t{rank}\n")
    missing = set(test_of) - set(per_user)
    if missing:
        sys.exit(f"{len(missing)} test users have no training rows")
    if short:
        # RecBole needs three interactions for train, validation and test; such users would not be tested alike.
        sys.exit(f"{short} users have fewer than 3 interactions")
    print(f"wrote {path}: {len(train) + len(test)} interactions, {len(per_user)} users, {len(test)} test rows")


def env_int(name, default):
    return int(os.environ.get(name) or default)


def train(args):
    threads = env_int("THREADS", 1)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    import yaml
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed, get_model

    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    # RecBole writes its log/ and log_tensorboard/ folders into the working directory.
    os.chdir(work)
    epochs = env_int("EPOCHS", 200)
    settings = {
        "data_path": os.path.abspath(args.data_dir),
        "checkpoint_dir": os.path.join(work, "saved"),
        "use_gpu": False,
        "seed": env_int("SEED", 2020),
        "reproducibility": True,
        "show_progress": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": env_int("MAX_LEN", 200),
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "epochs": epochs,
        "train_batch_size": env_int("BATCH", 512),
        "learning_rate": 0.001,
        "stopping_step": 10,
        "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
        "metrics": ["NDCG", "Recall", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "eval_batch_size": 4096,
    }
    for kv in os.environ.get("RECBOLE_ARGS", "").split():
        key, _, value = kv.partition("=")
        settings[key] = yaml.safe_load(value)
    config = Config(model="SASRec", dataset=args.name, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)

    t0 = time.perf_counter()
    dataset = create_dataset(config)
    uid_field, iid_field, time_field = dataset.uid_field, dataset.iid_field, dataset.time_field
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_s = time.perf_counter() - t0

    # RecBole's test rows must be Kindred's test rows, one per user.
    test_ds = test_data._dataset
    got = set(
        zip(
            dataset.id2token(uid_field, test_ds.inter_feat[uid_field].numpy()),
            dataset.id2token(iid_field, test_ds.inter_feat[iid_field].numpy()),
        )
    )
    want = {(u, i) for u, i, _ in read_split(os.path.join(args.split_dir, "fold0.test.csv"))}
    if got != want or len(test_ds) != len(want):
        sys.exit(f"RecBole's test rows differ from Kindred's: {len(got - want)} extra, {len(want - got)} missing")
    print(f"test rows match Kindred's fold0.test.csv: {len(got)} users", flush=True)

    # Each user's items in Kindred's order, for the masking: read back from the .inter file, because the
    # dataset's own rows were replaced by RecBole's augmented training sequences, which lack each first item.
    with open(os.path.join(args.data_dir, args.name, f"{args.name}.inter")) as f:
        next(f)
        seq = defaultdict(list)
        for line in f:
            user, item, rank = line.rstrip("\n").split("\t")
            seq[user].append((int(float(rank)), item))
    history = {}
    for user, ranked in seq.items():
        ranked.sort()
        if [r for r, _ in ranked] != list(range(len(ranked))):
            sys.exit(f"user {user}: ranks in the .inter file are not 0..n-1")
        history[int(dataset.token2id(uid_field, user))] = torch.as_tensor(
            dataset.token2id(iid_field, [i for _, i in ranked]), dtype=torch.long
        )

    budget_s = float(os.environ.get("TIME_BUDGET_S") or 0)

    class BudgetSpent(Exception):
        """Another epoch would not fit in TIME_BUDGET_S."""

    class KindredTrainer(Trainer):
        """RecBole's trainer with seen items excluded from the ranking and the epochs timed."""

        train_seconds = []
        valid_seconds = []
        max_batches = None

        def _full_sort_batch_eval(self, batched_data):
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
            rows, cols = [], []
            for row, (u, r, target) in enumerate(
                zip(
                    interaction[uid_field].tolist(),
                    interaction[time_field].tolist(),
                    interaction[iid_field].tolist(),
                )
            ):
                seen = history[u]
                if int(seen[int(r)]) != target:
                    raise RuntimeError("evaluation row does not match the user's history order")
                rows.append(torch.full((int(r),), row, dtype=torch.long))
                cols.append(seen[: int(r)])
            scores[torch.cat(rows), torch.cat(cols)] = -float("inf")
            return interaction, scores, positive_u, positive_i

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            if budget_s and self.train_seconds:
                spent = sum(self.train_seconds) + sum(self.valid_seconds)
                last = self.train_seconds[-1] + (self.valid_seconds[-1] if self.valid_seconds else 0.0)
                if spent + last > budget_s:
                    raise BudgetSpent()
            t = time.perf_counter()
            if self.max_batches is None:
                loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            else:
                loss = self._train_batches(train_data, self.max_batches)
            self.train_seconds.append(time.perf_counter() - t)
            return loss

        def _train_batches(self, train_data, n):
            # The same steps as RecBole's epoch loop, stopped after n batches.
            self.model.train()
            total = 0.0
            for batch_idx, interaction in enumerate(train_data):
                if batch_idx == n:
                    break
                interaction = interaction.to(self.device)
                self.optimizer.zero_grad()
                loss = self.model.calculate_loss(interaction)
                loss.backward()
                self.optimizer.step()
                total += loss.item()
            return total

        def _valid_epoch(self, valid_data, show_progress=False):
            t = time.perf_counter()
            result = super()._valid_epoch(valid_data, show_progress)
            self.valid_seconds.append(time.perf_counter() - t)
            return result

    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = KindredTrainer(config, model)
    n_train = len(train_data._dataset)
    batch = config["train_batch_size"]
    batches_per_epoch = -(-n_train // batch)
    result = {
        "peer": "recbole",
        "model": "SASRec",
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "dataset": args.name,
        "split": "kindred loo (fold0), RecBole LS valid_and_test on rank timestamps",
        "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1),
        "interactions": sum(len(h) for h in history.values()),
        "train_sequences": int(n_train),
        "batches_per_epoch": int(batches_per_epoch),
        "threads": threads,
        "settings": {k: config[k] for k in (
            "seed", "epochs", "train_batch_size", "learning_rate", "stopping_step", "MAX_ITEM_LIST_LENGTH",
            "n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob",
            "loss_type", "valid_metric")},
        "seen_items_excluded": True,
        "data_prep_s": round(data_s, 3),
    }

    if os.environ.get("TIME_BATCHES"):
        n = env_int("TIME_BATCHES", 0)
        trainer.max_batches = n
        trainer._train_epoch(train_data, 0)
        timed = min(n, batches_per_epoch)
        per_batch = trainer.train_seconds[0] / timed
        result.update({
            "mode": "time_batches",
            "timed_batches": timed,
            "timed_s": round(trainer.train_seconds[0], 3),
            "per_batch_s": round(per_batch, 4),
            # The last batch of an epoch is smaller; the estimate counts it as full.
            "epoch_estimate_s": round(per_batch * batches_per_epoch, 1),
        })
    else:
        if os.environ.get("MAX_BATCHES"):
            trainer.max_batches = env_int("MAX_BATCHES", 0)
            result["max_batches_per_epoch"] = trainer.max_batches
        t = time.perf_counter()
        budget_spent = False
        try:
            trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        except BudgetSpent:
            budget_spent = True
        best_valid = trainer.best_valid_result
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        test_s = time.perf_counter() - t
        result.update({
            "mode": "trained" if trainer.max_batches is None else "capped epochs (pipeline check only)",
            "time_budget_s": budget_s or None,
            "stopped_by_time_budget": budget_spent,
            "epochs_run": len(trainer.train_seconds),
            # RecBole counts the validations since the best one in cur_step (one validation per epoch here).
            "best_epoch": len(trainer.valid_seconds) - trainer.cur_step,
            "fit_s": round(fit_s, 3),
            "train_s": round(sum(trainer.train_seconds), 3),
            "valid_s": round(sum(trainer.valid_seconds), 3),
            "train_epoch_s": [round(s, 3) for s in trainer.train_seconds],
            "test_s": round(test_s, 3),
            "valid": {k: float(v) for k, v in best_valid.items()},
            "test": {k: float(v) for k, v in test.items()},
            "ndcg@10": float(test["ndcg@10"]),
            "recall@10": float(test["recall@10"]),
            "hit@10": float(test["hit@10"]),
        })
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("split_dir")
    c.add_argument("out_dir")
    c.add_argument("name")
    t = sub.add_parser("train")
    t.add_argument("data_dir", help="folder holding NAME/NAME.inter")
    t.add_argument("name")
    t.add_argument("split_dir", help="Kindred's split, to check the test rows against")
    t.add_argument("--work", required=True, help="RecBole's working folder (logs, checkpoints)")
    t.add_argument("--out", required=True, help="JSON results file")
    args = p.parse_args()
    convert(args) if args.cmd == "convert" else train(args)


if __name__ == "__main__":
    main()
