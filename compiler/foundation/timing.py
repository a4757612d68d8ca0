"""Frame timing: a frame is cut into equal slots, one for the inputs to settle, one per phase of memory
cells (each layer of cells switches in its own), one for the outputs; the frame is sampled at its end."""

from __future__ import annotations

GUARD = 0.02  # fraction of a slot left between one phase falling and the next rising (non-overlap)


def slot(phases: int) -> float:
    """One slot as a fraction of the frame: the inputs', each phase's and the outputs' (phases + 2)."""
    return 1.0 / (phases + 2)


def window(phase: int, phases: int) -> tuple[float, float]:
    """(rise, fall) of a phase as fractions of the frame: slots 1..phases of phases + 2 equal slots."""
    width = slot(phases)
    return phase * width + GUARD * width, (phase + 1) * width - GUARD * width
