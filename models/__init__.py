"""Model zoo: memory recurrent cells, backbones, tasks, training and checkpoints.

The public contracts other parts of the project rely on are documented in models/README.md.
"""

__version__ = "0.1.0"
