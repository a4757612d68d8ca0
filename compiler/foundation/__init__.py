"""The foundation every other layer stands on: named errors, frame timing, the sky130 PDK adapter, the
ngspice runner and the simulation cache. It imports nothing of the project above it."""
