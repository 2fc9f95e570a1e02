"""Fuzzing campaigns, one command per target (`python tests/fuzz/<target>.py --cases N`), on
one shared harness (harness.py); tests/test_fuzz.py runs a small slice of each. docs/fuzzing.md
lists the targets, their pass rule and how to reproduce a case."""
