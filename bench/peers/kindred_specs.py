"""Filters Kindred model specs down to those the binary knows, per `kindred models --json`; stdlib only.

usage: kindred_specs.py MODELS_JSON SPEC...   prints each known spec on its own line (stdout) and a note for each
spec whose model/preset name or parameter names the binary does not know (stderr), so a benchmark can name models
that exist only on other branches and run them once they are merged.
"""
import json
import sys


def main():
    with open(sys.argv[1]) as f:
        catalog = json.load(f)
    params = {m["name"]: {p["name"] for p in m.get("params", [])} for m in catalog["models"]}
    presets = {p["preset"] for p in catalog.get("presets", [])}
    for spec in sys.argv[2:]:
        name, _, rest = spec.partition(":")
        name = name.strip()
        if name in presets and not rest:
            print(spec)
            continue
        if name not in params:
            print(f"note: skipping Kindred model '{spec}': this kindred binary has no model or preset '{name}'",
                  file=sys.stderr)
            continue
        unknown = [kv.split("=", 1)[0].strip() for kv in rest.split(",") if kv.strip()]
        unknown = [key for key in unknown if key not in params[name]]
        if unknown:
            print(f"note: skipping Kindred model '{spec}': '{name}' has no parameter {', '.join(unknown)}",
                  file=sys.stderr)
            continue
        print(spec)


if __name__ == "__main__":
    main()
