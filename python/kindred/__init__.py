"""Kindred from Python: load interactions, fit any of Kindred's models, evaluate and tune them
under a leakage-free protocol and get top-K lists, through the same Rust code as the `kindred`
CLI and server (a model saved here is read by `kindred recommend` and published to a server with
`kindred models register --publish`; one that `kindred train` or the server trained loads here).

    import kindred
    data = kindred.Dataset.from_pandas(ratings, user="userId", item="movieId",
                                       rating="rating", timestamp="timestamp")
    model = kindred.ALS(factors=64).fit(data, positive=4)
    model.recommend([1, 2, 3], k=10)          # DataFrame: user, item, rank, score
    report = kindred.evaluate(["als", "ease"], data, protocol="temporal:0.2,positive>=4")
    kindred.report(report, "report.html")
    kindred.Client("http://127.0.0.1:8080").recommend(1)

The GIL is released while Rust works, progress shows (tqdm when installed), and Ctrl-C stops a
fit, an evaluation or a search.
"""

from ._native import KindredError, __version__
from .client import Client, ServerError
from .dataset import Dataset
from .evaluation import Evaluation, evaluate, report, tune
from .model import ALS, BPR, EASE, SVD, Auto, ItemKNN, Model, Popularity, SVDpp

__all__ = [
    "Dataset",
    "Model",
    "Evaluation",
    "evaluate",
    "tune",
    "report",
    "Client",
    "ServerError",
    "KindredError",
    "ALS",
    "BPR",
    "EASE",
    "SVD",
    "SVDpp",
    "ItemKNN",
    "Popularity",
    "Auto",
    "__version__",
]
