"""The figure tools' command-line convention: a mistake is one line on stderr and exit code 2."""
import argparse
import sys

__all__ = ["Parser", "usage_error"]


def usage_error(prog, message):
    """Print "<prog>: error: <message>" on one line (stderr) and exit with code 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are ``usage_error``'s one line instead of the usage dump."""

    def error(self, message):
        usage_error(self.prog, message)
