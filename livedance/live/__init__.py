"""The real-time engine: timeline, scheduler, controls."""
