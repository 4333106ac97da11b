#!/usr/bin/env bash
# Cold-start items on MovieLens 1M (coldstart-items:0.1,positive>=4): does a sentence encoder's
# vector of the title help a content model recommend films nobody has rated yet? Writes the
# movies as a feature file with the columns kindred reads from movies.dat itself (genres, year,
# title), adds all-MiniLM-L6-v2 title vectors with `kindred embed`, then evaluates content models
# with and without them in one `kindred eval`, whose paired comparisons (95% bootstrap interval of
# the difference, randomisation test; users paired) are against the first model: today's best,
# `content` on genres, year and title words (TF-IDF); compared on NDCG@10 and recall@10.
# A second `kindred eval` reads the feature file without vectors and lets the model encode the
# titles itself (`text=title,encoder=DIR`): one path, so its row must equal the embedded file's.
#
# usage: bash bench/encoder/coldstart_titles.sh      (results in $WORK, default /tmp/kindred-encoder-bench)
source "$(dirname "$0")/common.sh"
python3 bench/encoder/movies_jsonl.py "$ml1m/movies.dat" "$work/movies.jsonl"
"$k" -q embed --item-features "$work/movies.jsonl" --text title --encoder "$encoder" \
  --out "$work/movies.with-embeddings.jsonl"
"$k" --threads "${THREADS:-2}" eval --no-segments --no-auc \
  --data "movielens:$ml1m" --item-features "$work/movies.with-embeddings.jsonl" \
  --protocol 'coldstart-items:0.1,positive>=4' --compare-on recall@10 \
  --model content:columns=genres+year+title \
  --model content:columns=genres \
  --model content:columns=genres+text_embedding \
  --model content:columns=genres+year+text_embedding \
  --model content:columns=genres+year+title+text_embedding \
  --model content:columns=text_embedding \
  --json "$work/coldstart_titles.json" | tee "$work/coldstart_titles.txt"
"$k" --threads "${THREADS:-2}" eval --no-segments --no-auc \
  --data "movielens:$ml1m" --item-features "$work/movies.jsonl" \
  --protocol 'coldstart-items:0.1,positive>=4' \
  --model "content:columns=genres+year+title+text_embedding,text=title,encoder=$encoder" \
  --json "$work/coldstart_titles_model_encoded.json" | tee "$work/coldstart_titles_model_encoded.txt"
