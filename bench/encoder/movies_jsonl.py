"""MovieLens 1M's movies.dat as a feature file (JSON Lines) with the columns `kindred` reads from
it itself: genres (categories), year (the `(YYYY)` a title ends with) and title (text).

usage: python movies_jsonl.py movies.dat OUT.jsonl [ROUNDS]
With ROUNDS > 1 the titles are repeated with different wording (title and genres; genres and
title) to make ROUNDS x 3,883 distinct texts for the speed benchmark, ids made unique.
"""

import json
import re
import sys


def main() -> None:
    src, out = sys.argv[1:3]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    movies = []
    with open(src, encoding="latin-1") as f:
        for line in f:
            movie_id, title, genres = line.rstrip("\n").split("::")
            movies.append((movie_id.strip(), title.strip(), [g for g in genres.split("|") if g]))
    with open(out, "w", encoding="utf-8") as f:
        for r in range(rounds):
            for movie_id, title, genres in movies:
                text = [title, f"{title}: {', '.join(genres)}", f"{' and '.join(genres)} film {title}"][r % 3]
                row = {"id": movie_id if r == 0 else f"{movie_id}-{r}", "genres": genres, "title": text}
                year = re.search(r"\((\d{4})\)$", title)
                if year:
                    row["year"] = int(year.group(1))
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
