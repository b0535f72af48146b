"""Music features (streaming == offline) and the causal beat tracker."""
