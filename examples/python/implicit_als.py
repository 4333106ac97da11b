"""ALS on MovieLens-1M with implicit, evaluated with implicit's own helpers.
Usage: python implicit_als.py ../shared/data/ml-1m  (needs implicit, pandas, scipy)"""
import sys

import pandas as pd
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.evaluation import ndcg_at_k, train_test_split

ratings = pd.read_csv(f"{sys.argv[1]}/ratings.dat", sep="::", engine="python",
                      names=["user", "item", "rating", "ts"])
ratings = ratings[ratings.rating >= 4]
users = ratings.user.astype("category")
items = ratings.item.astype("category")
matrix = sp.csr_matrix((ratings.rating.astype("float32"), (users.cat.codes, items.cat.codes)))
train, test = train_test_split(matrix, train_percentage=0.8, random_state=42)

model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15, random_state=42)
model.fit(train)
print("ndcg@10", ndcg_at_k(model, train, test, K=10))
ids, scores = model.recommend(0, train[0], N=10)
print([items.cat.categories[i] for i in ids])
