"""Motion data: datasets (AIST++ pkl, BVH), kinematic beats, dance units, export."""
