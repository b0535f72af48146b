"""Audio sources (live device, paced file) and the ring buffer they fill."""
