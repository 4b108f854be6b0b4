"""``python -m recformer_m2 ...``: the ``recformer-m2`` command, in the form launchers start
(``torchrun --nproc_per_node N -m recformer_m2 encode ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
