"""`make test`: say which backends the suite runs on, then run all of it."""

import sys

import pytest

from tests.backends import detect


def main() -> int:
    print(detect().describe(), flush=True)
    code = pytest.main(["-p", "no:cacheprovider", *sys.argv[1:]])
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
