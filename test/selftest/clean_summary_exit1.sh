#!/bin/sh
# Selftest fixture: a runner whose summary looks clean but whose exit status is 1.
echo "ok    fixture:one (1 ms)"
echo "fixture: 1 passed, 0 failed, 0 skipped"
exit 1
