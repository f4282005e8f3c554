#!/usr/bin/python3
"""`ahilite` as the integration suites run it on PostgreSQL: the real binary
($AHL_TEST_REAL_BIN) with the storage options of ahltest.storage_args added right after the
subcommand (--database of the data directory's schema, and its blob store), then exec'd, so the
process, its pid and its signals are the binary's own. ahltest.server_binary() names this file
when AHL_TEST_DATABASE is set; CTest's integ_pg_* runs hand it to the JS suites as AHILITE_BIN.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402


def main():
    real = ahltest.real_binary()
    argv = sys.argv[1:]
    extra = ahltest.storage_args(argv)
    os.execv(real, [real] + argv[:1] + extra + argv[1:])


if __name__ == '__main__':
    main()
