"""The pass/fail tally of the Python tests: check() counts, done() prints the closing line
"NAME: N passed, N failed[, N skipped]" and exits non-zero if anything failed.

    from pycheck import Checks
    t = Checks("test_x")
    t.check("what", ok, "detail shown on failure")
    t.skip("why")      # counted, and the reason printed to stderr
    t.done()
"""
import sys


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + str(detail) if detail else ''}")
        return ok

    def skip(self, reason):
        self.skipped += 1
        print(f"{self.name}: skipped: {reason}", file=sys.stderr)

    def done(self):
        tail = f", {self.skipped} skipped" if self.skipped else ""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed{tail}")
        sys.exit(1 if self.failed else 0)
