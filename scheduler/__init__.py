"""Placement: pure policy functions over worker capacities, and the loop that applies them."""
