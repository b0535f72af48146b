"""Unit VAE, composer, discriminators and checkpoint I/O."""
