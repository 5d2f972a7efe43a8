"""``python -m lto_ref.data``: the command line of ``lto_ref.fetch`` (where paper 2's data is
found, and downloading it); ``--help`` lists the commands."""
import os
import sys

from lto_ref import fetch as fetch_lib

__all__ = ["USAGE", "HELP", "main"]

USAGE = "usage: python -m lto_ref.data fetch DIR [NAMES...] | info [--data-dir DIR] | --help"
HELP = f"""{USAGE}

Paper 2's image data sets: where each is found, and downloading the real ones.

commands:
  info [--data-dir DIR]  where each of {', '.join(fetch_lib.NAMES)} is read from (DIR, the
                         download cache, offline packages) and how many images it has
  fetch DIR [NAMES...]   download NAMES (default all: {', '.join(fetch_lib.SOURCES)}) into
                         DIR/<name>/, each file checked against its published MD5
  -h, --help             this message
"""


def _parse(argv):
    """(command, arguments) of the command line; ValueError with a one-line reason."""
    if any(a in ("-h", "--help") for a in argv) or argv == ["help"]:
        return "help", ()
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "fetch" and rest and not rest[0].startswith("-"):
        bad = [n for n in rest[1:] if n not in fetch_lib.SOURCES]
        if bad:
            raise ValueError(f"unknown data set {bad[0]!r}; choose from "
                             f"{', '.join(fetch_lib.SOURCES)}")
        return command, (rest[0], tuple(rest[1:]) or tuple(fetch_lib.SOURCES))
    if command == "info" and (not rest or rest[0] == "--data-dir" and len(rest) == 2):
        if rest and not os.path.isdir(rest[1]):
            raise ValueError(f"--data-dir {rest[1]!r} is not a folder")
        return command, (rest[1] if rest else None,)
    raise ValueError(f"bad arguments {' '.join(argv)!r}; {USAGE}")


def _progress():
    """A progress printer for ``fetch``: a line per file and tenth of its size (or 8 MiB)."""
    shown = set()

    def report(file, done, total):
        step = (file, 10 * done // total if total else done >> 23)
        if step not in shown:
            shown.add(step)
            print(f"  {file}: {done / 1e6:.1f}" + (f" of {total / 1e6:.1f} MB" if total else " MB"))
    return report


def main(argv=None):
    """``python -m lto_ref.data fetch DIR [NAMES...] | info [--data-dir DIR] | --help``; exit
    status."""
    try:
        command, args = _parse(sys.argv[1:] if argv is None else list(argv))
    except ValueError as err:
        print(f"lto_ref.data: {err}", file=sys.stderr)
        return 2
    if command == "help":
        print(HELP, end="")
        return 0
    try:
        for path in fetch_lib.fetch(*args, progress=_progress()) if command == "fetch" else []:
            print(f"ready: {path}")
        for name in fetch_lib.NAMES if command == "info" else []:
            try:
                images, description = fetch_lib.find(name, *args)
                print(f"{description}: {len(images.labels):,} images of "
                      f"{images.pixels.shape[1]:,} pixels, {images.classes} classes")
            except LookupError as err:
                print(f"{name}: not found; {err}")
    except (OSError, ValueError) as err:
        print(f"lto_ref.data: {err}", file=sys.stderr)
        return 1
    return 0
