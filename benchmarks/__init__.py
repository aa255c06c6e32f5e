"""
Benchmarks: ``make bench`` runs every ``bench_*.py`` module's ``main()``.

Each benchmark measures zerfoo-cloud and the baseline it names side by side
in the same run and prints the ratio, because shared machines are noisy.
"""
