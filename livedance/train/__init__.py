"""Training loops for the unit VAE and the composer."""
