"""Frame sinks: OSC/VMC, viewer, offscreen render, recorder."""
