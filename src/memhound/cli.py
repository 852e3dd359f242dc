"""memhound command line (placeholder)."""
import sys


def main(argv=None):
    print("memhound: no commands yet", file=sys.stderr)
    return 2
