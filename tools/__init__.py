"""stackfit's own tools: run from the checkout, neither deployed nor collected as tests.

bench: the benchmark harness (`python -m tools.bench`, `make bench`), which writes docs/benchmarks.md.
"""
