"""Training recipes: flat scripts behind small config dataclasses (heads, multimodal, rgcl, instruct)."""
