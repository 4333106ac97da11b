"""ALS on MovieLens-1M with Kindred, evaluated under a leakage-free temporal protocol.
Usage: python kindred_als.py ../shared/data/ml-1m  (needs the kindred package: pip install ./python)"""
import sys

import kindred

data = kindred.Dataset.from_movielens(sys.argv[1])
report = kindred.evaluate("als", data, protocol="temporal:0.2,positive>=4", k=10)
print("ndcg@10", report["results"][0]["metrics"]["ndcg@10"])

model = kindred.ALS(factors=64).fit(data, positive=4)
print(model.recommend("1", k=10).item.tolist())
