"""Argument types for the command line: counts and numbers with their bounds, checked as they are parsed.

argparse turns a rejected value into a usage message naming the option and exit status 2, before any
work starts; every size an option controls is bounded here.
"""

from __future__ import annotations

import argparse
import math


def count(lo: int, hi: int):
    """An integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10) if text.strip().isascii() and len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number from {lo} to {hi}")
        return value

    return parse


def number(lo: float, hi: float, *, open_low: bool = False):
    """A finite number in [lo, hi] (or (lo, hi] with `open_low`)."""

    def parse(text: str) -> float:
        try:
            value = float(text) if len(text) <= 40 else math.nan
        except ValueError:
            value = math.nan
        low_ok = value > lo if open_low else value >= lo
        if not (math.isfinite(value) and low_ok and value <= hi):
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r} is not a finite number in {'(' if open_low else '['}{lo:g}, {hi:g}]"
            )
        return value

    return parse


JOBS = count(1, 256)  # ngspice processes or Dask workers at once
TEMPERATURE = number(-40.0, 125.0)  # C: the range the sky130 models are characterised over
SECONDS = number(0.0, 7 * 24 * 3600.0, open_low=True)
