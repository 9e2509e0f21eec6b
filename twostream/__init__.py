"""twostream: two-stream ConvNets for action recognition (Simonyan & Zisserman 2014)."""

import os

# torch's OpenMP threads spin-wait between parallel regions by default; on a CPU shared with other busy
# processes that makes tvl1 several times slower (experiments/flow_benchmark/README.md). OpenMP reads the
# policy once, when torch loads it, so it is set here, before any twostream module imports torch; a
# policy the user set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
