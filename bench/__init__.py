"""alignlab benchmarks: runner overhead, compute efficiency, chat, PERL and the seed claims, responsiveness.

``python -m bench`` runs every section and writes ``bench/results.json`` and ``bench/RESULTS.md``.
Each measurement runs in a fresh child process (``python -m bench.child CASE JSON``), so peak
resident memory is per case and no warm state leaks between A and B. Cases that are compared are
interleaved (A B A B) and reported as medians and ratios: the machine is shared and noisy.
"""
