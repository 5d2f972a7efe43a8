"""python -m paper_figures.readme [--results DIR] [--readme FILE]

Rewrites the claims table of the README (the lines between ``<!-- claims -->`` and
``<!-- /claims -->``) from the figures' JSON files in DIR (default ``paper_figures/results``), so
the README always shows the committed results. ``table`` is the same table as a string.
"""
import argparse
import os
import sys

from paper_figures import _claims

__all__ = ["table", "update"]

START, END = "<!-- claims -->", "<!-- /claims -->"


def table(results):
    """The claims summary (Markdown rows, one per figure: claims reproduced of claims checked,
    their ids) of every full-run figure JSON in ``results``; CLAIMS.md has each claim."""
    rows = ["| figure | reproduced | claims (details in CLAIMS.md) |", "|---|---|---|"]
    for figure, claims in _claims.collect(results):
        yes = [c["id"] for c in claims if c["reproduced"]]
        no = [c["id"] for c in claims if not c["reproduced"]]
        rows.append(f"| {figure} | {len(yes)} of {len(claims)} | yes: {', '.join(yes) or '—'}; "
                    f"no: {', '.join(no) or '—'} |")
    return "\n".join(rows) + "\n"


def update(readme, results):
    """README text with its claims block replaced; ValueError if the markers are missing."""
    if START not in readme or END not in readme:
        raise ValueError(f"the README must contain {START} and {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(results)}{END}{tail}"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m paper_figures.readme", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=os.path.join("paper_figures", "results"))
    p.add_argument("--readme", default="README.md")
    args = p.parse_args(argv)
    with open(args.readme, encoding="utf-8") as fh:
        text = fh.read()
    try:
        new = update(text, args.results)
    except ValueError as err:
        print(f"python -m paper_figures.readme: {args.readme}: {err}", file=sys.stderr)
        return 2
    with open(args.readme, "w", encoding="utf-8") as fh:
        fh.write(new)
    print(f"{args.readme}: claims table rewritten from {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
