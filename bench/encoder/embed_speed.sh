#!/usr/bin/env bash
# How long `kindred embed` takes for 10,000 titles on this machine (the whole command: loading
# all-MiniLM-L6-v2, tokenising, encoding, writing), ROUNDS times (default 3); with
# sentence-transformers timed on the same texts in the same run when its virtualenv exists
# (ST_VENV, made by bench/encoder/golden.sh). Prints one line per round and the medians.
#
# usage: bash bench/encoder/embed_speed.sh
source "$(dirname "$0")/common.sh"
rounds="${ROUNDS:-3}"
n=10000
python3 bench/encoder/movies_jsonl.py "$ml1m/movies.dat" "$work/all.jsonl" 3
head -n "$n" "$work/all.jsonl" > "$work/titles.jsonl"
st_venv="${ST_VENV:-/tmp/kindred-golden/venv}"
threads="$(nproc)"
echo "texts: $n titles (ML-1M titles, then titles with genres), $threads threads"
kindred_s=(); st_s=()
for r in $(seq "$rounds"); do
  start=$(date +%s.%N)
  "$k" -q embed --item-features "$work/titles.jsonl" --text title --encoder "$encoder" --out "$work/out.jsonl"
  end=$(date +%s.%N)
  kindred_s+=("$(echo "$end - $start" | bc)")
  line="round $r: kindred embed ${kindred_s[-1]} s"
  if [ -x "$st_venv/bin/python" ]; then
    st_s+=("$(HF_HUB_OFFLINE=1 OMP_NUM_THREADS="$threads" "$st_venv/bin/python" bench/encoder/st_speed.py "$encoder" "$work/titles.jsonl")")
    line="$line, sentence-transformers ${st_s[-1]} s (model load included)"
  fi
  echo "$line"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: kindred embed $(median "${kindred_s[@]}") s"
[ ${#st_s[@]} -gt 0 ] && echo "median: sentence-transformers $(median "${st_s[@]}") s"
wc -l < "$work/out.jsonl" | xargs echo "lines written:"
