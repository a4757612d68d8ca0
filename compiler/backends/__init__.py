"""Backends: IR -> SPICE netlist, IR -> behavioural reference model, IR -> layout."""
