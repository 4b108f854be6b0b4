"""Old import path of :mod:`recformer_m2.synth.vocab` (the generator's translation tables)."""

from .synth.vocab import *  # noqa: F401,F403  (re-export the public tables under the old name)
