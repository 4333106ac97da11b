"""What recommended lists contain, from `kindred eval --export-recs` CSV files on MovieLens 1M:
mean release year of the top-10 items, the share released in 1990 or later, and the share of
Horror films. Usage: python3 bench/list_profile.py MOVIES_DAT RECS.csv [RECS.csv ...]"""
import csv
import re
import sys


def movies(path):
    info = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            movie, title, genres = line.rstrip("\n").split("::")
            year = re.search(r"\((\d{4})\)\s*$", title)
            info[movie] = (int(year.group(1)) if year else None, genres.split("|"))
    return info


def main():
    info = movies(sys.argv[1])
    for path in sys.argv[2:]:
        years, horror, slots = [], 0, 0
        with open(path) as f:
            for row in csv.DictReader(f):
                if int(row["rank"]) > 10 or row["item"] not in info:
                    continue
                year, genres = info[row["item"]]
                slots += 1
                horror += "Horror" in genres
                if year is not None:
                    years.append(year)
        recent = sum(y >= 1990 for y in years) / len(years)
        print(f"{path}: {slots} slots, mean year {sum(years) / len(years):.1f}, "
              f"released >= 1990 {recent:.3f}, horror {horror / slots:.4f}")


if __name__ == "__main__":
    main()
