"""The streams' inputs read from the cache: RGB frames and flow stacks, their stacking and transforms."""
